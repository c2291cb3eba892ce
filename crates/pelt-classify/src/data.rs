//! Classification tasks as runs take them: GLUE (official layout), the shipped text sets, and image
//! sets (shipped, CIFAR-10 binary batches, one folder per class), read once per sweep and tokenised
//! (or kept as pixels), with the digest of what was loaded.

use anyhow::{anyhow, Result};
use pelt_core::{ImageDims, Inputs};
use pelt_data::{glue, shipped, vision::ImageSet, Dataset, Encoding, TextTokenizer};
use pelt_train::batch::padded_inputs;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// Known shipped text task names.
pub const SHIPPED: [&str; 2] = ["rotten_tomatoes", "bbc_news"];

/// Known shipped image task names (they need a ViT backbone).
pub const VISION: [&str; 3] = ["fashion_mnist", "digits", "mnist_5k"];

/// Where a classification sweep's tasks are read from.
#[derive(Debug, Clone, Default)]
pub struct TaskFiles {
    /// The assets the set-up installed (shipped text and image sets).
    pub assets: PathBuf,
    /// A GLUE folder in the official layout, for GLUE tasks.
    pub glue_dir: Option<PathBuf>,
    /// Image tasks from a user's folders, by task name.
    pub image_dirs: BTreeMap<String, PathBuf>,
    /// Text tasks from a user's files, by task name.
    pub file_tasks: BTreeMap<String, pelt_data::files::FileTask>,
    /// The folder relative paths of file tasks start from.
    pub root: PathBuf,
}

/// A task with its tokenised splits, prepared once per sweep.
#[derive(Debug)]
pub struct TaskData {
    /// The examples.
    pub dataset: Dataset,
    /// Encodings of `dataset.train`.
    pub train: Vec<Encoding>,
    /// Encodings of `dataset.dev`, if the task has a fixed dev split.
    pub dev: Option<Vec<Encoding>>,
    /// Encodings of `dataset.test`.
    pub test: Vec<Encoding>,
    /// The tokenizer's padding id.
    pub pad_id: i64,
    /// For an image task, its images (train, dev if fixed, test), parallel to `dataset`'s examples,
    /// whose texts are then empty; the encodings above are empty too.
    pub images: Option<(ImageSet, Option<ImageSet>, ImageSet)>,
}

/// Which split of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitName {
    /// The training pool.
    Train,
    /// The fixed dev split, where the task has one.
    Dev,
    /// The test split.
    Test,
}

impl TaskData {
    /// A split as the backbone takes it: token encodings (padded per batch to the longest, or to at
    /// least `pad_to` positions), or images resized to `image`.
    pub fn source(&self, split: SplitName, image: Option<ImageDims>, pad_to: usize) -> Option<Source<'_>> {
        if let (Some((train, dev, test)), Some(dims)) = (&self.images, image) {
            let set = match split {
                SplitName::Train => train,
                SplitName::Dev => dev.as_ref()?,
                SplitName::Test => test,
            };
            return Some(Source::Images { set, dims });
        }
        let enc = match split {
            SplitName::Train => &self.train,
            SplitName::Dev => self.dev.as_ref()?,
            SplitName::Test => &self.test,
        };
        Some(Source::Text { enc, pad_id: self.pad_id, pad_to })
    }
}

/// The examples of one split as a backbone takes them.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Token encodings, padded per batch.
    Text {
        /// The split's encodings.
        enc: &'a [Encoding],
        /// The tokenizer's padding id.
        pad_id: i64,
        /// Pad every batch to at least this many positions (0: to its longest example).
        pad_to: usize,
    },
    /// Images, resized and normalised per batch to the backbone's input.
    Images {
        /// The split's images.
        set: &'a ImageSet,
        /// The backbone's input size and channels.
        dims: ImageDims,
    },
}

impl Source<'_> {
    /// Inputs for the examples `rows` of the split.
    pub fn batch(&self, rows: &[usize], device: Device) -> Inputs {
        match self {
            Source::Text { enc, pad_id, pad_to } => {
                let batch: Vec<&Encoding> = rows.iter().map(|&i| &enc[i]).collect();
                padded_inputs(&batch, *pad_id, *pad_to, device)
            }
            Source::Images { set, dims } => {
                let (c, s) = (dims.channels as usize, dims.size as usize);
                let pixels: Vec<f32> = rows.iter().flat_map(|&i| set.input(i, c, s)).collect();
                let shape = [rows.len() as i64, dims.channels, dims.size, dims.size];
                Inputs::images(Tensor::from_slice(&pixels).view(shape).to_device(device))
            }
        }
    }

    /// Example `i`'s length in tokens (images all count as one length: nothing to bucket).
    pub fn length(&self, i: usize) -> usize {
        match self {
            Source::Text { enc, .. } => enc[i].ids.len(),
            Source::Images { .. } => 0,
        }
    }
}

/// Loads a task's examples from a user's files, the shipped assets or the GLUE folder.
pub fn load_task(name: &str, files: &TaskFiles) -> Result<Dataset> {
    let assets = files.assets.as_path();
    let data = match name {
        _ if files.file_tasks.contains_key(name) => pelt_data::files::load(name, &files.file_tasks[name], &files.root),
        "rotten_tomatoes" => {
            shipped::rotten_tomatoes(&assets.join("rotten_tomatoes/rotten_tomatoes_corpus_full.csv.bz2"))
        }
        "bbc_news" => shipped::bbc_news(&assets.join("bbcnews")),
        other => {
            let task = glue::GlueTask::parse(other).ok_or_else(|| anyhow!("unknown task `{other}`"))?;
            let dir = files.glue_dir.as_ref().ok_or_else(|| anyhow!("task `{other}` needs glue_dir"))?;
            glue::load(dir, task)
        }
    };
    let data = data.map_err(|e| {
        anyhow!("{e}{}", if SHIPPED.contains(&name) { " (run the set-up: scripts/setup.sh)" } else { "" })
    })?;
    if data.skipped_rows > 0 {
        eprintln!("{name}: skipped {} malformed rows of the official files", data.skipped_rows);
    }
    Ok(data)
}

/// Loads a shipped image set (installed by the set-up) as a task: its examples carry only labels, the
/// images travel beside them.
pub fn load_vision(name: &str, assets: &Path, user: Option<(&Path, usize)>) -> Result<TaskData> {
    use pelt_data::vision;
    let ds = match (name, user) {
        // A user's folder, read at the backbone's image size.
        (_, Some((dir, size))) => vision::user_folder(name, dir, size).map_err(|e| anyhow!("{e}"))?,
        ("fashion_mnist", _) => vision::idx_folder(name, &assets.join("fashion_mnist"), &vision::FASHION_CLASSES)
            .map_err(|e| anyhow!("{e} (run the set-up: scripts/setup.sh)"))?,
        ("digits", _) => vision::csv_images(name, &assets.join("vision/digits.csv.gz"), 8, 16)
            .map_err(|e| anyhow!("{e} (run the set-up: scripts/setup.sh)"))?,
        ("mnist_5k", _) => vision::csv_images(name, &assets.join("vision/mnist_5k.csv.gz"), 28, 255)
            .map_err(|e| anyhow!("{e} (run the set-up: scripts/setup.sh)"))?,
        (other, None) => return Err(anyhow!("unknown image task `{other}`")),
    };
    let examples = |set: &pelt_data::vision::ImageSet| -> Vec<pelt_data::Example> {
        set.labels
            .iter()
            .map(|&c| pelt_data::Example { text_a: String::new(), text_b: None, label: pelt_data::Label::Class(c) })
            .collect()
    };
    let dataset = Dataset {
        name: name.to_owned(),
        labels: pelt_data::LabelSpace::Classes(ds.classes.clone()),
        metrics: vec![pelt_data::Metric::Accuracy],
        train: examples(&ds.train),
        dev: ds.dev.as_ref().map(examples),
        test: examples(&ds.test),
        skipped_rows: 0,
    };
    Ok(TaskData {
        dataset,
        train: Vec::new(),
        dev: None,
        test: Vec::new(),
        pad_id: 0,
        images: Some((ds.train, ds.dev, ds.test)),
    })
}

/// Reads a task and tokenises its splits (text), or reads its images at the backbone's size.
pub fn prepare(
    name: &str,
    files: &TaskFiles,
    tokenizer: Option<&TextTokenizer>,
    image_size: Option<i64>,
) -> Result<TaskData> {
    let assets = files.assets.as_path();
    let user = files.image_dirs.get(name).map(|d| (d.as_path(), image_size.unwrap_or(224) as usize));
    if VISION.contains(&name) || user.is_some() {
        return load_vision(name, assets, user);
    }
    let tokenizer = tokenizer.ok_or_else(|| anyhow!("task `{name}` is text: the backbone has no tokenizer.json"))?;
    let dataset = load_task(name, files)?;
    let train = tokenizer.encode(&dataset.train)?;
    let dev = dataset.dev.as_ref().map(|d| tokenizer.encode(d)).transpose()?;
    let test = tokenizer.encode(&dataset.test)?;
    Ok(TaskData { dataset, train, dev, test, pad_id: tokenizer.pad_id, images: None })
}

/// SHA-256 (first 12 bytes, hex) of a task's examples as loaded: every split's texts and labels, and
/// an image task's pixels, so two runs with the same digest saw the same data.
pub fn data_digest(task: &TaskData) -> String {
    let mut h = Sha256::new();
    let d = &task.dataset;
    let splits = [Some(&d.train), d.dev.as_ref(), Some(&d.test)];
    for (i, split) in splits.iter().enumerate() {
        h.update(format!("split {i} {}\n", split.map_or(0, |s| s.len())));
        for e in split.iter().flat_map(|s| s.iter()) {
            h.update(format!("{:?}\t{:?}\t{:?}\n", e.text_a, e.text_b, e.label));
        }
    }
    if let Some((train, dev, test)) = &task.images {
        for set in [Some(train), dev.as_ref(), Some(test)].into_iter().flatten() {
            h.update(format!("images {} {} {}\n", set.channels, set.size, set.max_value));
            h.update(&set.pixels);
        }
    }
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

//! Property tests of the readers of files users and the set-up bring: arbitrary bytes, and valid files
//! with bytes flipped, inserted or cut, must give a value or an error, never a panic. Sizes stay small
//! and case counts fixed so the whole file runs in seconds.

use pelt_data::{glue, shipped, summarization, vision};
use proptest::prelude::*;
use std::io::Write;
use std::path::Path;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() }
}

/// A valid file with one edit: flip one byte, insert bytes, or cut the file short.
fn mutated(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let n = valid.len();
    prop_oneof![
        (0..n, any::<u8>()).prop_map(move |(at, b)| {
            let mut v = valid.to_vec();
            v[at] ^= b | 1;
            v
        }),
        (0..=n, proptest::collection::vec(any::<u8>(), 1..8)).prop_map(move |(at, bytes)| {
            let mut v = valid.to_vec();
            v.splice(at..at, bytes);
            v
        }),
        (0..n).prop_map(move |at| valid[..at].to_vec()),
    ]
}

/// Arbitrary bytes, or a valid file with one edit.
fn file(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..256), mutated(valid)]
}

const SST2: &[u8] = b"sentence\tlabel\nit 's a charming and often affecting journey . \t1\nunflinchingly bleak \t0\n";
const STSB: &[u8] = b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n\
0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n";
const COLA: &[u8] = b"gj04\t1\t\tOur friends won't buy this analysis.\nclc95\t0\t*\tThe more we study.\n";
const RT: &[u8] = b"category,text,movie_name\nfresh,A charming film.,m1\nrotten,Dull and long.,m2\nplot,A man.,m3\n";
const JSONL: &[u8] = b"{\"id\": \"1\", \"url\": \"u\", \"title\": \"t\", \"summary\": \"s\", \"text\": \"a b c\"}\n";
const DIGITS: &[u8] = b"0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,0,3\n";

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn bz2(bytes: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An IDX image file of `n` square images of `side` pixels, and its label file.
fn idx(n: u32, side: u32) -> (Vec<u8>, Vec<u8>) {
    let mut images = [0x0803u32, n, side, side].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    images.extend((0..n * side * side).map(|i| i as u8));
    let mut labels = [0x0801u32, n].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    labels.extend((0..n).map(|i| (i % 10) as u8));
    (images, labels)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn glue_tsv_never_panics(train in file(SST2), dev in file(STSB), cola in file(COLA)) {
        let dir = tempfile::tempdir().unwrap();
        for task in glue::GlueTask::ALL {
            let folder = task.folder(dir.path());
            let bytes = match task { glue::GlueTask::Stsb => &dev, glue::GlueTask::Cola => &cola, _ => &train };
            for f in ["train.tsv", "dev.tsv", "dev_matched.tsv"] {
                write(&folder.join(f), bytes);
            }
            let _ = glue::load(dir.path(), task);
        }
    }

    #[test]
    fn rotten_tomatoes_csv_never_panics(csv in file(RT), raw in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.csv.bz2");
        write(&path, &if raw { csv.clone() } else { bz2(&csv) });
        let _ = shipped::rotten_tomatoes(&path);
    }

    #[test]
    fn bbc_news_folders_never_panic(article in file(b"Headline\n\nBody of the article.\n"), name in prop_oneof![Just("001.txt"), Just("x.txt"), Just("a"), Just(".txt")]) {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("business").join(name), &article);
        write(&dir.path().join("tech/001.txt"), &article);
        let _ = shipped::bbc_news(dir.path());
        let _ = summarization::bbc_headlines(dir.path());
    }

    #[test]
    fn summarization_jsonl_never_panics(lines in file(JSONL)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        write(&path, &lines);
        let _ = summarization::read_jsonl(&path);
        for split in ["train", "val", "test"] {
            write(&dir.path().join(format!("{split}.jsonl")), &lines);
        }
        let _ = summarization::aclsum(dir.path());
    }

    #[test]
    fn idx_files_never_panic(edit in 0usize..3, at in any::<prop::sample::Index>(), b in any::<u8>(), count in any::<u32>()) {
        let (mut images, mut labels) = idx(3, 4);
        match edit {
            // A header claiming any number of images: the size check must not overflow.
            0 => images[4..8].copy_from_slice(&count.to_be_bytes()),
            1 => { let i = at.index(images.len()); images[i] ^= b | 1; }
            _ => { let i = at.index(labels.len()); labels[i] ^= b | 1; }
        }
        let dir = tempfile::tempdir().unwrap();
        let (i, l) = (dir.path().join("i"), dir.path().join("l"));
        write(&i, &images);
        write(&l, &gz(&labels));
        let _ = vision::read_idx(&i, &l);
        for stem in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
            write(&dir.path().join(stem), &images);
        }
        for stem in ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"] {
            write(&dir.path().join(stem), &labels);
        }
        let _ = vision::idx_folder("f", dir.path(), &vision::FASHION_CLASSES);
    }

    #[test]
    fn image_csv_and_cifar_never_panic(csv in file(DIGITS), batch in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv.gz");
        write(&path, &gz(&csv));
        let _ = vision::csv_images("digits", &path, 8, 16);
        for f in ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"] {
            write(&dir.path().join(f), &batch);
        }
        let _ = vision::cifar10(dir.path());
    }

    #[test]
    fn image_folders_never_panic(bytes in file(PNG), ext in prop_oneof![Just("png"), Just("jpg")]) {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("cat").join(format!("a.{ext}")), &bytes);
        write(&dir.path().join("dog").join("b.png"), PNG);
        let _ = vision::image_folder("pets", dir.path(), 8);
    }
}

/// A valid 2 × 2 RGB PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd, 0xd4, 0x9a, 0x73, 0x00, 0x00, 0x00, 0x11, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xc0, 0xf0, 0x1f, 0x8c, 0x80, 0x18, 0x00, 0x1d, 0xf0, 0x03,
    0xfd, 0xd3, 0xd0, 0x7d, 0x26, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

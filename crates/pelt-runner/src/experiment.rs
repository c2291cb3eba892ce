//! Experiment files: one YAML per sweep or paper table, validated whole before any training starts.

use anyhow::{anyhow, bail, Context, Result};
use pelt_core::{BackboneDims, Registry};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A training-set size: a number of examples, k per class, or all of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataSize {
    /// K examples drawn from the training pool (UniPELT low-resource protocol).
    Examples(usize),
    /// k examples per class for train and again for dev (LM-BFF few-shot).
    Shot(usize),
    /// The whole training pool (minus the held-out dev set where the task has none).
    All,
}

impl DataSize {
    /// The label used in records and tables: `100`, `16-shot`, `all`.
    pub fn label(self) -> String {
        match self {
            DataSize::Examples(k) => k.to_string(),
            DataSize::Shot(k) => format!("{k}-shot"),
            DataSize::All => "all".into(),
        }
    }

    /// Parses a label written by [`DataSize::label`].
    pub fn parse(s: &str) -> Option<DataSize> {
        if s == "all" {
            return Some(DataSize::All);
        }
        if let Some(k) = s.strip_suffix("-shot") {
            return k.parse().ok().filter(|k| *k > 0).map(DataSize::Shot);
        }
        s.parse().ok().filter(|k| *k > 0).map(DataSize::Examples)
    }

    /// Sort key: sizes in increasing order, `all` last.
    pub fn order(self) -> (u8, usize) {
        match self {
            DataSize::Shot(k) => (0, k),
            DataSize::Examples(k) => (1, k),
            DataSize::All => (2, 0),
        }
    }
}

impl Serialize for DataSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

impl<'de> Deserialize<'de> for DataSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DataSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        let bad = || serde::de::Error::custom("a data size is a positive number, `N-shot` or `all`");
        match Raw::deserialize(d)? {
            Raw::N(n) if n > 0 => Ok(DataSize::Examples(n as usize)),
            Raw::N(_) => Err(bad()),
            Raw::S(s) => DataSize::parse(&s).ok_or_else(bad),
        }
    }
}

/// When the dev set is evaluated for model selection: `epoch`, or a number of optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalEvery {
    /// After every epoch.
    Epoch,
    /// Every N optimizer steps (and at the end).
    Steps(usize),
}

impl Serialize for EvalEvery {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EvalEvery::Epoch => s.serialize_str("epoch"),
            EvalEvery::Steps(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for EvalEvery {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EvalEvery, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n > 0 => Ok(EvalEvery::Steps(n as usize)),
            Raw::S(s) if s == "epoch" => Ok(EvalEvery::Epoch),
            _ => Err(serde::de::Error::custom("eval_every is `epoch` or a positive number of steps")),
        }
    }
}

/// Optimisation settings shared by every run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Training {
    /// Passes over the training set.
    pub epochs: usize,
    /// Upper bound on optimizer steps (0 = no bound).
    pub max_steps: usize,
    /// Lower bound on optimizer steps: small data sizes get more epochs so every run trains enough.
    pub min_steps: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Examples per evaluation batch.
    pub eval_batch_size: usize,
    /// Token limit per example (pairs are truncated longest-first).
    pub max_len: usize,
    /// Fraction of steps with linear warm-up.
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay (not applied to biases and LayerNorm).
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Dev evaluation schedule.
    pub eval_every: EvalEvery,
    /// Cap on the dev set used for model selection (protocol maximum 1000).
    pub dev_limit: usize,
    /// Cap on the test set (0 = the whole test split); a cap takes a fixed seeded sample.
    pub test_limit: usize,
    /// Intra-op threads for libtorch (0 = libtorch's default).
    pub threads: usize,
    /// Peak learning rate of the parts every method trains — the task head, a warm-started decoder's
    /// new cross-attention and output transform — so that rows differ only in the method (`None`: each
    /// method's own `lr`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_lr: Option<f64>,
}

impl Default for Training {
    fn default() -> Self {
        Training {
            epochs: 10,
            max_steps: 0,
            min_steps: 0,
            batch_size: 32,
            eval_batch_size: 64,
            max_len: 128,
            warmup_ratio: 0.06,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            eval_every: EvalEvery::Epoch,
            dev_limit: 1000,
            test_limit: 0,
            threads: 0,
            head_lr: None,
        }
    }
}

/// One method of the sweep with its configuration and learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    /// Registry name.
    pub method: String,
    /// Row label in tables (defaults to the method name); must be unique within the file.
    #[serde(default)]
    pub label: Option<String>,
    /// Peak learning rate.
    pub lr: f64,
    /// Method configuration; omitted fields take the method's defaults.
    #[serde(default)]
    pub config: serde_yaml::Value,
    /// In an experiment with a `transfer` section: whether this method trains on the source tasks
    /// first (default) or only on the target (`false`: the single-task baseline row).
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub transfer: bool,
    /// In a summarization experiment with several tasks (XL-Sum languages): one instance of the method
    /// trained on every task at once and evaluated on each, instead of one per task.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

fn yes() -> bool {
    true
}

/// How source training picks the task of each step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// With probability proportional to the task's training examples.
    #[default]
    Proportional,
    /// Every task equally often.
    Uniform,
}

/// The two-stage protocol (Polytropon, ATTEMPT): train on the source tasks together, each step one
/// task's batch with its own head and task id, then adapt to each target task of `tasks` as in a
/// single-task run. Source training is the same for every target, size and seed of a method, so it
/// runs once per (method, seed) and is kept in `<suite>/sources/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// Source task names (GLUE or shipped); none of them may be a target.
    pub sources: Vec<String>,
    /// How each step's task is drawn.
    #[serde(default)]
    pub sampling: Sampling,
    /// Training examples per source, drawn with the seed (0 = all of its training pool).
    #[serde(default)]
    pub examples_per_source: usize,
    /// Optimizer steps of source training (warm-up and linear decay as in `training`).
    pub steps: usize,
}

/// Target and decoding settings of a summarization experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationSpec {
    /// Summary tokens kept as training targets (the decoder adds its start and end tokens).
    pub max_target_len: usize,
    /// Tokens generated at most.
    pub max_new_tokens: usize,
    /// 1: greedy decoding; more: beam search.
    pub num_beams: usize,
    /// Beam scores are divided by length^length_penalty.
    pub length_penalty: f64,
    /// No n-gram of this size is generated twice (0: no constraint).
    pub no_repeat_ngram_size: usize,
}

impl Default for GenerationSpec {
    fn default() -> Self {
        GenerationSpec {
            max_target_len: 32,
            max_new_tokens: 32,
            num_beams: 1,
            length_penalty: 1.0,
            no_repeat_ngram_size: 0,
        }
    }
}

impl MethodSpec {
    /// The row label.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.method)
    }
}

/// A sweep: methods × tasks × data sizes × seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Suite name; results go to `<results>/<name>/`.
    pub name: String,
    /// Caption printed above the table.
    #[serde(default)]
    pub description: String,
    /// HF model folder, relative to the repository root (the experiment file's parent's parent).
    #[serde(default = "default_backbone")]
    pub backbone: PathBuf,
    /// Task names: GLUE tasks (need `glue_dir`) or shipped sets (`rotten_tomatoes`, `bbc_news`).
    pub tasks: Vec<String>,
    /// GLUE folder in the official layout (overridden by `--glue-dir`).
    #[serde(default)]
    pub glue_dir: Option<PathBuf>,
    /// Image tasks from a user's folders, by task name: CIFAR-10's binary batches, or one subfolder
    /// per class (optionally under `train/` and `test/`); they need a ViT backbone.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub image_dirs: std::collections::BTreeMap<String, PathBuf>,
    /// Training-set sizes.
    pub data_sizes: Vec<DataSize>,
    /// Seeds; each (method, task, size) runs once per seed.
    pub seeds: Vec<u64>,
    /// Optimisation settings.
    #[serde(default)]
    pub training: Training,
    /// Methods to compare.
    pub methods: Vec<MethodSpec>,
    /// Source training before each run (multi-task transfer); absent for single-task sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// XL-Sum folder in the release's layout (one folder per language, `<language>_train.jsonl`, …),
    /// for `xlsum:<language>` tasks (overridden by `--xlsum-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlsum_dir: Option<PathBuf>,
    /// Summarization: warm-start a BERT2BERT encoder-decoder from the BERT-family `backbone` (Rothe et
    /// al. 2020), since it has no decoder of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm_start: bool,
    /// Summarization: target lengths and decoding (defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationSpec>,
    /// The file it was read from (for messages).
    #[serde(skip)]
    pub source: PathBuf,
}

fn default_backbone() -> PathBuf {
    PathBuf::from("assets/minilm")
}

/// The 1-based line of the `index`-th entry of the top-level `methods:` list, and of `field` inside
/// it when given, so errors from method configs (parsed after the file) can still point at a line.
pub fn locate_method(text: &str, index: usize, field: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim_end() == "methods:")?;
    let mut seen = 0;
    let mut entry_line = None;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let t = l.trim_start();
        if !l.starts_with([' ', '-']) && !t.is_empty() && !t.starts_with('#') {
            break;
        }
        if t.starts_with("- ") || t == "-" {
            if seen == index {
                entry_line = Some(i);
            } else if entry_line.is_some() {
                break;
            }
            seen += 1;
        } else if let (Some(e), Some(f)) = (entry_line, field) {
            if i > e && t.starts_with(&format!("{f}:")) {
                return Some(i + 1);
            }
        }
        if let (Some(e), Some(f)) = (entry_line, field) {
            if i == e && (t.contains(&format!(" {f}:")) || t.contains(&format!("{{{f}:"))) {
                return Some(i + 1);
            }
        }
    }
    entry_line.map(|l| l + 1)
}

/// Known shipped text task names.
pub const SHIPPED: [&str; 2] = ["rotten_tomatoes", "bbc_news"];

/// Known shipped summarization task names (`xlsum:<language>` tasks come from a user's XL-Sum folder).
pub const SUMMARIZATION: [&str; 2] = ["bbc_headlines", "aclsum"];

/// Whether a task is summarization (trained as seq2seq and scored by ROUGE).
pub fn is_summarization(task: &str) -> bool {
    SUMMARIZATION.contains(&task) || task.starts_with("xlsum:")
}

/// Known shipped image task names (they need a ViT backbone).
pub const VISION: [&str; 3] = ["fashion_mnist", "digits", "mnist_5k"];

impl Experiment {
    /// Reads and validates an experiment file. Every error names the file, and the line and field
    /// where there is one. `dims` come from the backbone's `config.json`, so method configs are
    /// validated against the real sizes before anything is trained.
    pub fn load(
        path: &Path,
        registry: &Registry,
        root: &Path,
        glue_override: Option<&Path>,
    ) -> Result<(Experiment, BackboneDims)> {
        Experiment::load_with(path, registry, root, glue_override, None)
    }

    /// [`Experiment::load`] with the XL-Sum folder overridden too.
    pub fn load_with(
        path: &Path,
        registry: &Registry,
        root: &Path,
        glue_override: Option<&Path>,
        xlsum_override: Option<&Path>,
    ) -> Result<(Experiment, BackboneDims)> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).with_context(|| format!("{shown}: cannot read experiment file"))?;
        let mut exp: Experiment = serde_yaml::from_str(&text).map_err(|e| anyhow!("{shown}: {e}"))?;
        exp.source = path.to_path_buf();
        if let Some(g) = glue_override {
            exp.glue_dir = Some(g.to_path_buf());
        }
        if let Some(x) = xlsum_override {
            exp.xlsum_dir = Some(x.to_path_buf());
        }
        if exp.backbone.is_relative() {
            exp.backbone = root.join(&exp.backbone);
        }
        let line_of = |key: &str| text.lines().position(|l| l.starts_with(&format!("{key}:"))).map_or(0, |i| i + 1);
        let fail = |key: &str, msg: String| anyhow!("{shown}:{}: field `{key}`: {msg}", line_of(key));
        if exp.name.is_empty() || !exp.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(fail("name", format!("`{}` must be non-empty letters, digits, `-` or `_`", exp.name)));
        }
        if exp.tasks.is_empty() {
            return Err(fail("tasks", "list at least one task".into()));
        }
        if exp.data_sizes.is_empty() {
            return Err(fail("data_sizes", "list at least one size".into()));
        }
        if exp.seeds.is_empty() {
            return Err(fail("seeds", "list at least one seed".into()));
        }
        if exp.methods.is_empty() {
            return Err(fail("methods", "list at least one method".into()));
        }
        let t = &exp.training;
        let checks = [
            (t.epochs == 0, "training.epochs", "must be at least 1"),
            (t.batch_size == 0, "training.batch_size", "must be at least 1"),
            (t.eval_batch_size == 0, "training.eval_batch_size", "must be at least 1"),
            (t.max_len < 8, "training.max_len", "must be at least 8"),
            (!(0.0..1.0).contains(&t.warmup_ratio), "training.warmup_ratio", "must be in [0, 1)"),
            (t.weight_decay.is_nan() || t.weight_decay < 0.0, "training.weight_decay", "must be non-negative"),
            (t.max_grad_norm.is_nan() || t.max_grad_norm <= 0.0, "training.max_grad_norm", "must be positive"),
            (t.dev_limit == 0, "training.dev_limit", "must be at least 1"),
            (t.head_lr.is_some_and(|lr| !(lr > 0.0 && lr < 1.0)), "training.head_lr", "must be in (0, 1)"),
        ];
        if let Some((_, key, msg)) = checks.iter().find(|c| c.0) {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            let line = text.lines().position(|l| l.trim_start().starts_with(&format!("{leaf}:"))).map_or(0, |i| i + 1);
            bail!("{shown}:{line}: field `{key}`: {msg}");
        }
        if let Some(tr) = &exp.transfer {
            let line = text.lines().position(|l| l.trim_start().starts_with("sources:")).map_or(0, |i| i + 1);
            if tr.sources.is_empty() {
                bail!("{shown}:{line}: field `transfer.sources`: list at least one source task");
            }
            if let Some(t) = tr.sources.iter().find(|s| exp.tasks.contains(s)) {
                bail!("{shown}:{line}: field `transfer.sources`: `{t}` is also a target in `tasks`; a target must be held out");
            }
            if tr.steps == 0 {
                let line = text.lines().position(|l| l.trim_start().starts_with("steps:")).map_or(0, |i| i + 1);
                bail!("{shown}:{line}: field `transfer.steps`: must be at least 1");
            }
        } else if let Some(i) = exp.methods.iter().position(|m| !m.transfer) {
            bail!(
                "{shown}:{}: methods[{i}] field `transfer`: only meaningful in an experiment with a `transfer` section",
                locate_method(&text, i, Some("transfer")).unwrap_or(0)
            );
        }
        let sources = exp.transfer.as_ref().map(|t| t.sources.clone()).unwrap_or_default();
        let config = exp.backbone.join("config.json");
        let summarizing = exp.tasks.iter().filter(|t| is_summarization(t)).count();
        let dims = if summarizing > 0 {
            exp.check_summarization(&text, summarizing, &fail)?
        } else {
            exp.check_not_summarization(&text)?;
            let dims = pelt_backbone::dims_of(&exp.backbone)
                .map_err(|e| fail("backbone", format!("{e} (run the set-up: scripts/setup.sh)")))?;
            if dims.is_t5() {
                // Classification runs use an encoder only; a T5's decoder layers would hold method
                // parameters that never train.
                return Err(fail(
                    "backbone",
                    format!(
                        "{} is a T5 encoder-decoder: pelt trains it on summarization tasks (bbc_headlines, aclsum, \
                         xlsum:<language>), not on classification",
                        config.display()
                    ),
                ));
            }
            dims
        };
        for task in exp.tasks.iter().chain(&sources).filter(|t| !is_summarization(t)) {
            let user_images = exp.image_dirs.get(task);
            let image_task = VISION.contains(&task.as_str()) || user_images.is_some();
            if image_task != dims.image.is_some() {
                let kind = if image_task { "an image task" } else { "a text task" };
                return Err(fail("tasks", format!("`{task}` is {kind}, but {} is not", config.display())));
            }
            if let Some(dir) = user_images {
                if !dir.is_dir() {
                    return Err(fail("image_dirs", format!("{}: no such folder for task `{task}`", dir.display())));
                }
            }
            if SHIPPED.contains(&task.as_str()) || image_task {
                continue;
            }
            if pelt_data::glue::GlueTask::parse(task).is_none() {
                return Err(fail("tasks", format!("unknown task `{task}` (GLUE: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli; shipped: rotten_tomatoes, bbc_news; images: fashion_mnist, digits, mnist_5k)")));
            }
            let Some(glue) = &exp.glue_dir else {
                return Err(fail("glue_dir", format!("task `{task}` is a GLUE task: set glue_dir or pass --glue-dir")));
            };
            let folder = pelt_data::glue::GlueTask::parse(task).map(|g| g.folder(glue)).unwrap_or_default();
            if !folder.join("train.tsv").is_file() {
                return Err(fail("glue_dir", format!("{} has no train.tsv for `{task}`", folder.display())));
            }
        }
        let mut labels = std::collections::HashSet::new();
        for (i, m) in exp.methods.iter().enumerate() {
            let at = |field: Option<&str>| locate_method(&text, i, field).unwrap_or(0);
            let entry = registry
                .get(&m.method)
                .map_err(|e| anyhow!("{shown}:{}: methods[{i}].method: {e}", at(Some("method"))))?;
            if !(m.lr > 0.0 && m.lr < 1.0) {
                bail!(
                    "{shown}:{}: methods[{i}] ({}) field `lr`: must be in (0, 1), got {}",
                    at(Some("lr")),
                    m.label(),
                    m.lr
                );
            }
            (entry.build)(&m.config, &dims, tch::Device::Cpu).map_err(|e| match e {
                pelt_core::PeltError::Config(c) => {
                    let field = c.field.split('.').next().filter(|f| !f.is_empty());
                    anyhow!("{shown}:{}: methods[{i}] ({}) config: {c}", at(field), m.label())
                }
                other => anyhow!("{shown}:{}: methods[{i}] ({}): {other}", at(None), m.label()),
            })?;
            if !labels.insert(m.label().to_owned()) {
                bail!(
                    "{shown}:{}: methods[{i}]: label `{}` is used twice; give one a distinct `label`",
                    at(None),
                    m.label()
                );
            }
        }
        Ok((exp, dims))
    }

    /// Whether the experiment trains encoder-decoders on summarization tasks.
    pub fn is_summarization(&self) -> bool {
        self.tasks.iter().any(|t| is_summarization(t))
    }

    /// The decoding settings (defaults when the file gives none).
    pub fn generation(&self) -> GenerationSpec {
        self.generation.unwrap_or_default()
    }

    /// Checks a summarization experiment and returns the encoder-decoder's sizes.
    fn check_summarization(
        &self,
        text: &str,
        summarizing: usize,
        fail: &dyn Fn(&str, String) -> anyhow::Error,
    ) -> Result<BackboneDims> {
        if summarizing < self.tasks.len() {
            let other = self.tasks.iter().find(|t| !is_summarization(t)).cloned().unwrap_or_default();
            return Err(fail(
                "tasks",
                format!("`{other}` is not a summarization task; a file trains either classifiers or summarizers"),
            ));
        }
        if self.transfer.is_some() {
            return Err(fail("transfer", "the two-stage protocol is for classification tasks".into()));
        }
        if let Some(s) = self.data_sizes.iter().find(|s| matches!(s, DataSize::Shot(_))) {
            return Err(fail("data_sizes", format!("`{}`: k-shot needs classes; use a number or `all`", s.label())));
        }
        let g = self.generation();
        let bad = [
            (g.max_target_len == 0, "max_target_len", "must be at least 1"),
            (g.max_new_tokens == 0, "max_new_tokens", "must be at least 1"),
            (g.num_beams == 0, "num_beams", "must be at least 1"),
            (!(g.length_penalty.is_finite()), "length_penalty", "must be a finite number"),
        ];
        if let Some((_, key, msg)) = bad.iter().find(|c| c.0) {
            let line = text.lines().position(|l| l.trim_start().starts_with(&format!("{key}:"))).map_or(0, |i| i + 1);
            bail!("{}:{line}: field `generation.{key}`: {msg}", self.file_hint());
        }
        let config = self.backbone.join("config.json");
        let dims = pelt_backbone::dims_of(&self.backbone)
            .map_err(|e| fail("backbone", format!("{e} (run the set-up: scripts/setup.sh)")))?;
        if dims.image.is_some() {
            return Err(fail("backbone", format!("{} is a ViT; summarization needs a text model", config.display())));
        }
        if !dims.is_t5() && !self.warm_start {
            return Err(fail(
                "warm_start",
                format!(
                    "{} is an encoder without a decoder: set `warm_start: true` to build a BERT2BERT from it, \
                     or point `backbone` at a T5 / mT5 folder",
                    config.display()
                ),
            ));
        }
        if dims.is_t5() && self.warm_start {
            return Err(fail("warm_start", format!("{} is already an encoder-decoder", config.display())));
        }
        if !self.backbone.join("tokenizer.json").is_file() {
            return Err(fail("backbone", format!("{}: no tokenizer.json", self.backbone.display())));
        }
        for task in &self.tasks {
            let Some(language) = task.strip_prefix("xlsum:") else { continue };
            let Some(dir) = &self.xlsum_dir else {
                return Err(fail("xlsum_dir", format!("task `{task}` needs xlsum_dir or --xlsum-dir")));
            };
            let file = dir.join(language).join(format!("{language}_train.jsonl"));
            if !file.is_file() {
                return Err(fail("xlsum_dir", format!("{}: no such file for task `{task}`", file.display())));
            }
        }
        if let Some(i) = self.methods.iter().position(|m| m.shared) {
            if self.tasks.len() < 2 {
                bail!(
                    "{}:{}: methods[{i}] field `shared`: sharing needs at least two tasks",
                    self.file_hint(),
                    locate_method(text, i, Some("shared")).unwrap_or(0)
                );
            }
        }
        pelt_backbone::seq2seq_dims(&self.backbone, self.warm_start).map_err(|e| fail("backbone", e.to_string()))
    }

    /// Refuses the summarization settings in a classification experiment.
    fn check_not_summarization(&self, text: &str) -> Result<()> {
        let line_of = |key: &str| text.lines().position(|l| l.starts_with(&format!("{key}:"))).map_or(0, |i| i + 1);
        for (set, key) in [(self.warm_start, "warm_start"), (self.generation.is_some(), "generation")] {
            if set {
                bail!("{}:{}: field `{key}`: only for summarization tasks", self.file_hint(), line_of(key));
            }
        }
        if let Some(i) = self.methods.iter().position(|m| m.shared) {
            bail!(
                "{}:{}: methods[{i}] field `shared`: only for summarization tasks",
                self.file_hint(),
                locate_method(text, i, Some("shared")).unwrap_or(0)
            );
        }
        Ok(())
    }

    fn file_hint(&self) -> String {
        self.source.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sizes_parse_and_order() {
        let v: Vec<DataSize> = serde_yaml::from_str("[100, all, 16-shot]").unwrap();
        assert_eq!(v, vec![DataSize::Examples(100), DataSize::All, DataSize::Shot(16)]);
        assert!(serde_yaml::from_str::<Vec<DataSize>>("[0]").is_err());
        assert!(serde_yaml::from_str::<Vec<DataSize>>("[lots]").is_err());
        assert!(DataSize::Shot(16).order() < DataSize::Examples(10).order());
        assert_eq!(DataSize::parse(&DataSize::All.label()), Some(DataSize::All));
    }

    #[test]
    fn locates_method_entries_and_fields() {
        let text = "name: x\nmethods:\n  - method: full\n    lr: 1e-5\n  - method: lora\n    lr: 5e-4\n    config:\n      r: 0\nseeds: [1]\n";
        assert_eq!(locate_method(text, 0, None), Some(3));
        assert_eq!(locate_method(text, 1, Some("lr")), Some(6));
        assert_eq!(locate_method(text, 1, Some("r")), Some(8));
        assert_eq!(locate_method(text, 1, Some("method")), Some(5));
    }
}

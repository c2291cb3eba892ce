//! Experiment files: one YAML per sweep or paper table, validated whole before any training starts.

use anyhow::{anyhow, bail, Context, Result};
pub use pelt_classify::Transfer;
use pelt_classify::{SHIPPED, VISION};
use pelt_core::{BackboneDims, Registry};
pub use pelt_records::DataSize;
use pelt_seq2seq::is_summarization;
pub use pelt_seq2seq::GenerationSpec;
pub use pelt_train::{MethodSpec, Training};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where an experiment's data and models are, besides what the file says: the command line's
/// overrides of its folders, and the assets folder of the set-up.
#[derive(Debug, Clone, Default)]
pub struct Places<'a> {
    /// `--glue-dir`, over the file's `glue_dir`.
    pub glue_dir: Option<&'a Path>,
    /// `--xlsum-dir`, over the file's `xlsum_dir`.
    pub xlsum_dir: Option<&'a Path>,
    /// `--ner-dir`, over the file's `ner_dir`.
    pub ner_dir: Option<&'a Path>,
    /// The assets folder (`--assets` / `PELT_ASSETS`); the default backbone is its `minilm/`.
    pub assets: Option<&'a Path>,
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
    /// HF model folder, relative to the repository root; by default the set-up's all-MiniLM-L6-v2,
    /// `minilm/` under the assets folder (`--assets`, `PELT_ASSETS`). Resolved to a full path on load.
    #[serde(default)]
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
    /// Text tasks from a user's files (CSV, TSV, JSON Lines, Parquet), by task name: files, columns,
    /// labels or scores, splits and metrics (`pelt_data::files::FileTask`). Paths are relative to the
    /// repository root.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub file_tasks: std::collections::BTreeMap<String, pelt_data::files::FileTask>,
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
    /// Federated training of every run over simulated clients (FedPETuning's setting); absent for
    /// centralised sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated: Option<pelt_classify::federated::Federated>,
    /// XL-Sum folder in the release's layout (one folder per language, `<language>_train.jsonl`, …),
    /// for `xlsum:<language>` tasks (overridden by `--xlsum-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xlsum_dir: Option<PathBuf>,
    /// NER folder holding `wnut17/`, `mit-restaurant/`, `mit-movie/` (and a user's `conll2003/`), for
    /// the NER tasks (overridden by `--ner-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ner_dir: Option<PathBuf>,
    /// Data-to-text folder holding `e2e/` and `webnlg2017/` in the releases' layouts, for the `e2e` and
    /// `webnlg` tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d2t_dir: Option<PathBuf>,
    /// Temporal video grounding (`tvg_fashion`, `tvg_digits`): the vision backbone of the frames, the
    /// constructed videos' sizes and the grounding model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tvg: Option<pelt_vl::TvgSettings>,
    /// Vision-language tasks (`evqa`, `evqa_caption`): the visual tokens' patch size and the captions'
    /// length (defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vl: Option<pelt_vl::VlSettings>,
    /// NER: the source stage of entries with `prime: plm | method` (cross-domain priming).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priming: Option<pelt_tokens::PrimingSettings>,
    /// Summarization: warm-start a BERT2BERT encoder-decoder from the BERT-family `backbone` (Rothe et
    /// al. 2020), since it has no decoder of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm_start: bool,
    /// Summarization: target lengths and decoding (defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationSpec>,
    /// An equal tuning budget: `tuning: {lr: [...]}` searches these learning rates (one trial run each)
    /// for every method entry that gives no `lr` of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<Tuning>,
    /// A YAML file of learning rates by method label (or registry name), relative to this file, for
    /// entries that give no `lr` and no `tuning` applies: rates several experiment files share, kept in
    /// one place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<PathBuf>,
    /// Row labels to compare paired by seed, `[before, after]` each: the table's page then shows each
    /// pair's difference per column with its standard error (`pairs.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<[String; 2]>,
    /// The file it was read from (for messages).
    #[serde(skip)]
    pub source: PathBuf,
}

/// An experiment's tuning budget (`tuning:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    /// The learning rates every entry without its own `lr` tries.
    pub lr: Vec<f64>,
}

/// What is wrong with a list of learning rates to search, if anything.
fn search_problem(rates: &[f64]) -> Option<String> {
    if rates.is_empty() {
        return Some("the search lists no rate".into());
    }
    if let Some(r) = rates.iter().find(|r| !(**r > 0.0 && **r < 1.0)) {
        return Some(format!("every rate must be in (0, 1), got {r}"));
    }
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Some("a rate is listed twice".into());
    }
    None
}

/// Reads a rates file: a mapping of method label (or registry name) to learning rate.
fn read_rates(path: &Path) -> Result<std::collections::BTreeMap<String, f64>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("{shown}: cannot read the rates file"))?;
    serde_yaml::from_str(&text).map_err(|e| anyhow!("{shown}: {e} (expected `label: rate` lines)"))
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

impl Experiment {
    /// Reads and validates an experiment file. Every error names the file, and the line and field
    /// where there is one. `dims` come from the backbone's `config.json`, so method configs are
    /// validated against the real sizes before anything is trained.
    pub fn load(path: &Path, registry: &Registry, root: &Path, places: &Places) -> Result<(Experiment, BackboneDims)> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).with_context(|| format!("{shown}: cannot read experiment file"))?;
        let mut exp: Experiment = serde_yaml::from_str(&text).map_err(|e| anyhow!("{shown}: {e}"))?;
        exp.source = path.to_path_buf();
        if let Some(g) = places.glue_dir {
            exp.glue_dir = Some(g.to_path_buf());
        }
        if let Some(x) = places.xlsum_dir {
            exp.xlsum_dir = Some(x.to_path_buf());
        }
        if let Some(n) = places.ner_dir {
            exp.ner_dir = Some(n.to_path_buf());
        }
        if exp.backbone.as_os_str().is_empty() {
            exp.backbone = root.join(places.assets.unwrap_or(Path::new("assets"))).join("minilm");
        } else if exp.backbone.is_relative() {
            exp.backbone = root.join(&exp.backbone);
        }
        if let Some(v) = exp.vl.as_mut().and_then(|v| v.vqav2.as_mut()).filter(|v| v.dir.is_relative()) {
            v.dir = root.join(&v.dir);
        }
        if let Some(t) = exp.tvg.as_mut() {
            for p in t.vision.iter_mut().chain(t.charades.as_mut().map(|c| &mut c.dir)) {
                if p.is_relative() {
                    *p = root.join(&*p);
                }
            }
        }
        for task in exp.file_tasks.values_mut() {
            for p in [Some(&mut task.train), task.dev.as_mut(), task.test.as_mut()].into_iter().flatten() {
                if p.is_relative() {
                    *p = root.join(&*p);
                }
            }
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
        if let Some(fed) = &exp.federated {
            // The smallest K of the grid bounds the clients; `all` and k-shot sizes are checked when
            // the task is loaded, before any run trains.
            let min_train = exp.data_sizes.iter().filter_map(|s| match s {
                DataSize::Examples(k) => Some(*k),
                _ => None,
            });
            if let Err(r) = fed.check(min_train.min()) {
                let leaf = r.field;
                let line =
                    text.lines().position(|l| l.trim_start().starts_with(&format!("{leaf}:"))).map_or(0, |i| i + 1);
                bail!("{shown}:{line}: field `federated.{}`: {}", r.field, r.message);
            }
            if exp.transfer.is_some()
                || exp.methods.iter().any(|m| m.shared)
                || exp.tasks.iter().any(|t| is_summarization(t))
            {
                bail!(
                    "{shown}:{}: field `federated`: federated runs train one classification task at a time (no \
                     transfer, no shared methods, no summarization)",
                    line_of("federated")
                );
            }
        }
        if exp.federated.is_none() {
            if let Some(i) = exp.methods.iter().position(|m| !m.federated || m.partition.is_some()) {
                let field = if exp.methods[i].federated { "partition" } else { "federated" };
                bail!(
                    "{shown}:{}: methods[{i}] field `{field}`: only meaningful in an experiment with a `federated` section",
                    locate_method(&text, i, Some(field)).unwrap_or(0)
                );
            }
        }
        if let Some(fed) = &exp.federated {
            for (i, m) in exp.methods.iter().enumerate() {
                if let Some(p) = &m.partition {
                    if let Err(r) = fed.with_partition(p).and_then(|f| f.check(None).map(|_| f)) {
                        bail!(
                            "{shown}:{}: methods[{i}] field `partition`: {}",
                            locate_method(&text, i, Some("partition")).unwrap_or(0),
                            r.message
                        );
                    }
                }
            }
        }
        if exp.training.pad_to_max_len && exp.tasks.iter().any(|t| is_summarization(t) || pelt_tokens::is_ner(t)) {
            let line = text.lines().position(|l| l.trim_start().starts_with("pad_to_max_len:")).map_or(0, |i| i + 1);
            bail!(
                "{shown}:{line}: field `training.pad_to_max_len`: pads classification batches only (the \
                 reference form of UniPELT's gate pooling); this file has summarization or NER tasks"
            );
        }
        // PCG plans the keys of tables and triple sets: it has nothing to plan elsewhere.
        if let Some(i) = exp.methods.iter().position(|m| m.method == "pcg") {
            if let Some(t) = exp.tasks.iter().find(|t| !pelt_seq2seq::data::DATA_TO_TEXT.contains(&t.as_str())) {
                bail!(
                    "{shown}:{}: methods[{i}] field `method`: pcg plans the content of data-to-text inputs (tasks \
                     e2e, webnlg), but `{t}` is not one; the classification prefix generated from the input is `idpg`",
                    locate_method(&text, i, Some("method")).unwrap_or(0)
                );
            }
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
        for name in exp.file_tasks.keys() {
            let known = SHIPPED.contains(&name.as_str())
                || VISION.contains(&name.as_str())
                || pelt_data::glue::GlueTask::parse(name).is_some();
            if known {
                return Err(fail("file_tasks", format!("`{name}` is the name of a built-in task: choose another")));
            }
            if !exp.tasks.contains(name) && !sources.contains(name) {
                return Err(fail("file_tasks", format!("`{name}` is not in `tasks` (or transfer sources)")));
            }
        }
        let tvg = exp.tasks.iter().filter(|t| pelt_vl::is_tvg(t)).count();
        if tvg > 0 {
            exp.check_tvg(tvg, &dims, &fail)?;
        } else if exp.tvg.is_some() {
            return Err(fail("tvg", "only for temporal grounding tasks (tvg_fashion, tvg_digits)".into()));
        }
        let vl = exp.tasks.iter().filter(|t| pelt_vl::is_vl(t)).count();
        if vl > 0 {
            exp.check_vl(&text, vl, &dims, &fail)?;
        } else if exp.vl.is_some() {
            return Err(fail("vl", format!("only for vision-language tasks ({})", pelt_vl::VL.join(", "))));
        }
        let ner = exp.tasks.iter().filter(|t| pelt_tokens::is_ner(t)).count();
        if ner > 0 {
            exp.check_ner(&text, ner, &dims, &fail)?;
        } else if exp.priming.is_some() {
            return Err(fail("priming", "only for NER tasks".into()));
        }
        for (i, m) in exp.methods.iter().enumerate() {
            let Some(lr) = m.prime_lr else { continue };
            let at = locate_method(&text, i, Some("prime_lr")).unwrap_or(0);
            if m.prime != pelt_train::Priming::Method {
                bail!("{shown}:{at}: methods[{i}] field `prime_lr`: only with `prime: method` (`prime: plm` uses the priming section's `plm_lr`)");
            }
            if !(lr > 0.0 && lr < 1.0) {
                bail!("{shown}:{at}: methods[{i}] field `prime_lr`: must be in (0, 1), got {lr}");
            }
        }
        if let Some(i) = exp.methods.iter().position(|m| !m.prime.is_none()) {
            if exp.priming.is_none() {
                bail!(
                    "{shown}:{}: methods[{i}] field `prime`: needs the experiment's `priming` section (its source and steps)",
                    locate_method(&text, i, Some("prime")).unwrap_or(0)
                );
            }
        }
        for task in
            exp.tasks.iter().chain(&sources).filter(|t| {
                !is_summarization(t) && !pelt_tokens::is_ner(t) && !pelt_vl::is_tvg(t) && !pelt_vl::is_vl(t)
            })
        {
            if let Some(file_task) = exp.file_tasks.get(task) {
                if dims.image.is_some() {
                    return Err(fail("tasks", format!("`{task}` is a text task, but {} is not", config.display())));
                }
                // Read every file now: a bad value is refused before anything trains.
                pelt_data::files::load(task, file_task, root)
                    .map_err(|e| fail("file_tasks", format!("`{task}`: {e}")))?;
                continue;
            }
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
        // Each entry's learning rate: its own `lr` (or `lr: {search: [...]}`), else the experiment's
        // `tuning.lr` search, else its line of the `rates` file.
        let rates = match &exp.rates {
            Some(file) => {
                let full = path.parent().unwrap_or(Path::new(".")).join(file);
                read_rates(&full).map_err(|e| fail("rates", e.to_string()))?
            }
            None => Default::default(),
        };
        if let Some(t) = &exp.tuning {
            if let Some(bad) = search_problem(&t.lr) {
                let line = text.lines().position(|l| l.trim_start().starts_with("lr:")).map_or(0, |i| i + 1);
                bail!("{shown}:{line}: field `tuning.lr`: {bad}");
            }
        }
        for (i, m) in exp.methods.iter_mut().enumerate() {
            let at = |field: Option<&str>| locate_method(&text, i, field).unwrap_or(0);
            if m.lr.is_nan() && m.lr_search.is_empty() {
                let from_file = rates.get(m.label()).or_else(|| rates.get(&m.method)).copied();
                match (&exp.tuning, from_file) {
                    (Some(t), _) => m.lr_search = t.lr.clone(),
                    (None, Some(lr)) => m.lr = lr,
                    (None, None) => bail!(
                        "{shown}:{}: methods[{i}] ({}) field `lr`: missing: give `lr: <rate>`, `lr: {{search: [...]}}`, \
                         the experiment's `tuning.lr`, or a `rates` file that names `{}`",
                        at(None),
                        m.label(),
                        m.label()
                    ),
                }
            } else if let Some(bad) = (!m.lr_search.is_empty()).then(|| search_problem(&m.lr_search)).flatten() {
                bail!("{shown}:{}: methods[{i}] ({}) field `lr`: {bad}", at(Some("lr")), m.label());
            }
        }
        let mut labels = std::collections::HashSet::new();
        for (i, m) in exp.methods.iter().enumerate() {
            let at = |field: Option<&str>| locate_method(&text, i, field).unwrap_or(0);
            let entry = registry
                .get(&m.method)
                .map_err(|e| anyhow!("{shown}:{}: methods[{i}].method: {e}", at(Some("method"))))?;
            if m.lr_search.is_empty() && !(m.lr > 0.0 && m.lr < 1.0) {
                bail!(
                    "{shown}:{}: methods[{i}] ({}) field `lr`: must be in (0, 1), got {}",
                    at(Some("lr")),
                    m.label(),
                    m.lr
                );
            }
            let built = (entry.build)(&m.config, &dims, tch::Device::Cpu).map_err(|e| match e {
                pelt_core::PeltError::Config(c) => {
                    let field = c.field.split('.').next().filter(|f| !f.is_empty());
                    anyhow!("{shown}:{}: methods[{i}] ({}) config: {c}", at(field), m.label())
                }
                other => anyhow!("{shown}:{}: methods[{i}] ({}): {other}", at(None), m.label()),
            })?;
            if let (Some(_), true, Err(why)) = (&exp.federated, m.federated, built.federates()) {
                bail!(
                    "{shown}:{}: methods[{i}] ({}) field `method`: `{}` cannot train federated: {why}; \
                     set `federated: false` for a centralised row",
                    at(Some("method")),
                    m.label(),
                    m.method
                );
            }
            if !labels.insert(m.label().to_owned()) {
                bail!(
                    "{shown}:{}: methods[{i}]: label `{}` is used twice; give one a distinct `label`",
                    at(None),
                    m.label()
                );
            }
        }
        // Paired comparisons name rows of this file (a searched entry's trials share its label).
        for pair in &exp.pairs {
            if let Some(l) = pair.iter().find(|l| !labels.contains(l.as_str())) {
                // The line of the label inside the `pairs` block, else the block's own line.
                let start = text.lines().position(|t| t.starts_with("pairs:")).unwrap_or(0);
                let line = text
                    .lines()
                    .enumerate()
                    .skip(start)
                    .find(|(_, t)| t.contains(l.as_str()))
                    .map_or(start, |(i, _)| i)
                    + 1;
                bail!("{shown}:{line}: field `pairs`: `{l}` is not the label of a method of this file");
            }
        }
        // A partitions axis: every federated entry once per partition, labelled by it (the centralised
        // reference rows stay one).
        if let Some(fed) = exp.federated.as_ref().filter(|f| !f.partitions.is_empty()) {
            let mut expanded = Vec::new();
            for m in &exp.methods {
                if !m.federated || m.partition.is_some() {
                    expanded.push(m.clone());
                    continue;
                }
                for p in &fed.partitions {
                    let tag = pelt_classify::federated::parse_partition(p).map_err(|e| fail("federated", e))?.3;
                    expanded.push(MethodSpec {
                        label: Some(format!("{}@{tag}", m.label())),
                        partition: Some(p.clone()),
                        ..m.clone()
                    });
                }
            }
            exp.methods = expanded;
        }
        // A learning-rate search: one entry per rate, labelled `<label>[lr=<rate>]`; the reports choose
        // each cell's trial by dev score (pelt_report::budget).
        if exp.methods.iter().any(|m| !m.lr_search.is_empty()) {
            exp.methods = exp
                .methods
                .iter()
                .flat_map(|m| match m.lr_search.is_empty() {
                    true => vec![m.clone()],
                    false => m
                        .lr_search
                        .iter()
                        .map(|&lr| MethodSpec {
                            label: Some(pelt_report::budget::trial_label(m.label(), lr)),
                            lr,
                            lr_search: Vec::new(),
                            ..m.clone()
                        })
                        .collect(),
                })
                .collect();
        }
        Ok((exp, dims))
    }

    /// What the reports need of this experiment: name, caption, row and column order (a searched entry's
    /// trials are one row).
    pub fn suite(&self) -> pelt_report::Suite {
        let mut methods: Vec<String> = Vec::new();
        for m in &self.methods {
            let row = pelt_report::budget::parse_trial(m.label()).map_or(m.label(), |(base, _)| base);
            if !methods.iter().any(|r| r == row) {
                methods.push(row.to_owned());
            }
        }
        pelt_report::Suite {
            name: self.name.clone(),
            description: self.description.clone(),
            tasks: self.tasks.clone(),
            methods,
            grid: Some(self.methods.len() * self.tasks.len() * self.data_sizes.len() * self.seeds.len()),
            pairs: self.pairs.iter().map(|[a, b]| (a.clone(), b.clone())).collect(),
            shared: self.methods.iter().filter(|m| m.shared).map(|m| m.label().to_owned()).collect(),
        }
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
        for task in self.tasks.iter().filter(|t| pelt_seq2seq::data::DATA_TO_TEXT.contains(&t.as_str())) {
            let Some(dir) = &self.d2t_dir else {
                return Err(fail(
                    "d2t_dir",
                    format!("task `{task}` needs d2t_dir (the folder of e2e/ and webnlg2017/)"),
                ));
            };
            let need = if task == "e2e" {
                dir.join("e2e/devset.csv")
            } else {
                dir.join("webnlg2017/test/testdata_with_lex.xml")
            };
            if !need.is_file() {
                return Err(fail("d2t_dir", format!("{}: no such file for task `{task}`", need.display())));
            }
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
        self.check_sharing(text)?;
        pelt_backbone::seq2seq_dims(&self.backbone, self.warm_start).map_err(|e| fail("backbone", e.to_string()))
    }

    /// Refuses the summarization settings in a classification experiment.
    /// Checks a NER experiment: every task a NER task, its folder and files there, sizes the task has,
    /// a text encoder, none of the other families' sections.
    fn check_ner(
        &self,
        text: &str,
        ner: usize,
        dims: &BackboneDims,
        fail: &dyn Fn(&str, String) -> anyhow::Error,
    ) -> Result<()> {
        if ner < self.tasks.len() {
            let other = self.tasks.iter().find(|t| !pelt_tokens::is_ner(t)).cloned().unwrap_or_default();
            return Err(fail("tasks", format!("`{other}` is not a NER task; a file trains either taggers or others")));
        }
        let line_of = |key: &str| text.lines().position(|l| l.starts_with(&format!("{key}:"))).map_or(0, |i| i + 1);
        for (set, key) in [(self.transfer.is_some(), "transfer"), (self.federated.is_some(), "federated")] {
            if set {
                bail!("{}:{}: field `{key}`: not for NER tasks", self.file_hint(), line_of(key));
            }
        }
        if dims.image.is_some() {
            return Err(fail("tasks", "NER tags text: the backbone must be a text encoder".into()));
        }
        let Some(dir) = &self.ner_dir else {
            return Err(fail(
                "ner_dir",
                "NER tasks need `ner_dir` (or --ner-dir): the folder of wnut17/, mit-restaurant/, …".into(),
            ));
        };
        if let Some(p) = &self.priming {
            if !matches!(p.source.as_str(), "wnut17" | "conll2003") {
                return Err(fail(
                    "priming",
                    format!("source `{}`: a task with a training file, wnut17 or conll2003", p.source),
                ));
            }
            if self.tasks.contains(&p.source) {
                return Err(fail(
                    "priming",
                    format!("source `{}` is also a target; a target must be held out", p.source),
                ));
            }
            if p.steps == 0 {
                return Err(fail("priming", "steps must be at least 1".into()));
            }
            if !(p.plm_lr > 0.0 && p.plm_lr < 1.0) {
                return Err(fail("priming", format!("plm_lr must be in (0, 1), got {}", p.plm_lr)));
            }
            pelt_tokens::data::check(&p.source, dir).map_err(|e| fail("priming", format!("{e:#}")))?;
        }
        for task in &self.tasks {
            pelt_tokens::data::check(task, dir).map_err(|e| fail("ner_dir", format!("{e:#}")))?;
            let k_shot = task.starts_with("mit_");
            for size in &self.data_sizes {
                let fits = match size {
                    DataSize::Shot(k) => !k_shot || pelt_tokens::SHOTS.contains(k),
                    DataSize::All | DataSize::Examples(_) => !k_shot,
                };
                if !fits {
                    let want = if k_shot {
                        format!("`<K>-shot`, K in {:?} (LightNER's files)", pelt_tokens::SHOTS)
                    } else {
                        "`all`, a number of sentences or `<K>-shot`".to_owned()
                    };
                    return Err(fail("data_sizes", format!("`{}` for `{task}`: expected {want}", size.label())));
                }
            }
        }
        Ok(())
    }

    /// Vision-language: every task one, the `vl` section (if any) valid, a text encoder to read the
    /// images' tokens, sizes that count images, shared methods only over two tasks or more.
    fn check_vl(
        &self,
        text: &str,
        vl: usize,
        dims: &BackboneDims,
        fail: &dyn Fn(&str, String) -> anyhow::Error,
    ) -> Result<()> {
        if vl != self.tasks.len() || self.transfer.is_some() || self.federated.is_some() {
            return Err(fail(
                "tasks",
                format!(
                    "vision-language tasks ({}) train among themselves: no other tasks, transfer or federated section \
                     beside them",
                    pelt_vl::VL.join(", ")
                ),
            ));
        }
        if let Err((field, why)) = self.vl.clone().unwrap_or_default().check(&self.tasks) {
            return Err(fail("vl", format!("{field}: {why}")));
        }
        if dims.image.is_some() {
            return Err(fail("backbone", "vision-language tasks read images as tokens of a text encoder".into()));
        }
        if let Some(s) = self.data_sizes.iter().find(|s| matches!(s, DataSize::Shot(_))) {
            return Err(fail("data_sizes", format!("`{}`: sizes are numbers of training images or `all`", s.label())));
        }
        self.check_sharing(text)
    }

    /// A method shared across tasks (summarization, vision-language) needs two tasks or more to share.
    fn check_sharing(&self, text: &str) -> Result<()> {
        if let Some(i) = self.methods.iter().position(|m| m.shared).filter(|_| self.tasks.len() < 2) {
            bail!(
                "{}:{}: methods[{i}] field `shared`: sharing needs at least two tasks",
                self.file_hint(),
                locate_method(text, i, Some("shared")).unwrap_or(0)
            );
        }
        Ok(())
    }

    /// Temporal grounding: every task one, the `tvg` section valid, a vision backbone that exists, a
    /// text encoder for the queries, sizes that count videos.
    fn check_tvg(&self, tvg: usize, dims: &BackboneDims, fail: &dyn Fn(&str, String) -> anyhow::Error) -> Result<()> {
        if tvg != self.tasks.len() || self.transfer.is_some() || self.federated.is_some() {
            return Err(fail(
                "tasks",
                "temporal grounding tasks (tvg_fashion, tvg_digits, charades_sta) train alone: no other tasks, transfer or \
                 federated section beside them"
                    .into(),
            ));
        }
        let Some(t) = &self.tvg else {
            return Err(fail("tasks", "temporal grounding tasks need the `tvg` section (at least `vision:`)".into()));
        };
        if let Err((field, why)) = t.check() {
            return Err(fail("tvg", format!("{field}: {why}")));
        }
        if self.tasks.iter().any(|task| task != "charades_sta") {
            let Some(vision) = &t.vision else {
                return Err(fail("tvg", "vision: the constructed sets need a vision backbone for their frames".into()));
            };
            if !vision.join("config.json").is_file() {
                return Err(fail(
                    "tvg",
                    format!(
                        "vision: {} has no config.json (pelt pretrain-vit --out <folder> writes one)",
                        vision.display()
                    ),
                ));
            }
        }
        if self.tasks.iter().any(|task| task == "charades_sta") {
            let Some(c) = &t.charades else {
                return Err(fail("tvg", "charades: charades_sta needs `charades: {dir, fps}`".into()));
            };
            for need in ["sta_train.txt", "sta_test.txt", "features"] {
                if !c.dir.join(need).exists() {
                    return Err(fail("tvg", format!("charades: {} has no {need}", c.dir.display())));
                }
            }
        }
        if dims.image.is_some() || dims.is_t5() {
            return Err(fail(
                "backbone",
                "temporal grounding encodes its queries with a text encoder (BERT family)".into(),
            ));
        }
        if let Some(s) = self.data_sizes.iter().find(|s| matches!(s, DataSize::Shot(_))) {
            return Err(fail("data_sizes", format!("`{}`: grounding sizes are numbers of videos or `all`", s.label())));
        }
        Ok(())
    }

    fn check_not_summarization(&self, text: &str) -> Result<()> {
        let line_of = |key: &str| text.lines().position(|l| l.starts_with(&format!("{key}:"))).map_or(0, |i| i + 1);
        for (set, key) in [(self.warm_start, "warm_start"), (self.generation.is_some(), "generation")] {
            if set {
                bail!("{}:{}: field `{key}`: only for summarization tasks", self.file_hint(), line_of(key));
            }
        }
        let vl = !self.tasks.is_empty() && self.tasks.iter().all(|t| pelt_vl::is_vl(t));
        if let Some(i) = self.methods.iter().position(|m| m.shared).filter(|_| !vl) {
            bail!(
                "{}:{}: methods[{i}] field `shared`: only for summarization and vision-language tasks",
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
    fn locates_method_entries_and_fields() {
        let text = "name: x\nmethods:\n  - method: full\n    lr: 1e-5\n  - method: lora\n    lr: 5e-4\n    config:\n      r: 0\nseeds: [1]\n";
        assert_eq!(locate_method(text, 0, None), Some(3));
        assert_eq!(locate_method(text, 1, Some("lr")), Some(6));
        assert_eq!(locate_method(text, 1, Some("r")), Some(8));
        assert_eq!(locate_method(text, 1, Some("method")), Some(5));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// A valid experiment over a tiny BERT's config and a one-file SST-2, beside which the test writes
    /// its variants.
    const VALID: &str = "name: fuzz\ndescription: a file to mutate\nbackbone: model\ntasks: [sst2]\nglue_dir: glue\n\
data_sizes: [100, 16-shot]\nseeds: [1, 2]\ntraining:\n  epochs: 2\n  batch_size: 8\n  eval_every: 10\n\
methods:\n  - method: lora\n    lr: 1.0e-3\n    config: {r: 4}\n  - method: houlsby\n    label: adapter\n    lr: 1.0e-3\n";

    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("model")).unwrap();
        let config = serde_json::json!({"model_type": "bert", "vocab_size": 100, "hidden_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
            "max_position_embeddings": 64, "type_vocab_size": 2});
        std::fs::write(dir.path().join("model/config.json"), config.to_string()).unwrap();
        std::fs::create_dir_all(dir.path().join("glue/SST-2")).unwrap();
        std::fs::write(dir.path().join("glue/SST-2/train.tsv"), "sentence\tlabel\na b\t1\n").unwrap();
        dir
    }

    /// Writes `text` as `e.yaml` in `dir` and loads it: the experiment, or the refusal's message.
    fn load_text(dir: &Path, text: &str) -> Result<Experiment, String> {
        let path = dir.join("e.yaml");
        std::fs::write(&path, text).unwrap();
        let registry = crate::registry::registry();
        Experiment::load(&path, &registry, dir, &Places::default()).map(|(e, _)| e).map_err(|e| e.to_string())
    }

    /// The valid file with the workspace's GLUE folder and one data size.
    fn one_size(dir: &Path) -> String {
        let glue = format!("glue_dir: {}", dir.join("glue").display());
        VALID.replace("glue_dir: glue", &glue).replace("data_sizes: [100, 16-shot]", "data_sizes: [100]")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_experiment_file_is_loaded_or_refused(edit in 0usize..4, at in any::<prop::sample::Index>(),
                                                    b in any::<u8>(), noise in proptest::collection::vec(any::<u8>(), 0..200)) {
            let bytes = match edit {
                0 => noise,
                1 => { let mut v = VALID.as_bytes().to_vec(); let i = at.index(v.len()); v[i] ^= b | 1; v }
                2 => { let mut v = VALID.as_bytes().to_vec(); let i = at.index(v.len()); v.insert(i, b); v }
                _ => VALID.as_bytes()[..at.index(VALID.len())].to_vec(),
            };
            let dir = workspace();
            let path = dir.path().join("e.yaml");
            std::fs::write(&path, &bytes).unwrap();
            let registry = crate::registry::registry();
            if let Err(e) = Experiment::load(&path, &registry, dir.path(), &Places::default()) {
                // Every refusal names the file.
                prop_assert!(e.to_string().contains("e.yaml"), "{e}");
            }
        }
    }

    #[test]
    fn pairs_name_rows_of_the_file() {
        let dir = workspace();
        let path = dir.path().join("e.yaml");
        let glue = format!("glue_dir: {}", dir.path().join("glue").display());
        let paired = format!("{}pairs:\n  - [lora, adapter]\n", VALID.replace("glue_dir: glue", &glue));
        std::fs::write(&path, &paired).unwrap();
        let registry = crate::registry::registry();
        let (exp, _) = Experiment::load(&path, &registry, dir.path(), &Places::default()).unwrap();
        assert_eq!(exp.suite().pairs, vec![("lora".to_owned(), "adapter".to_owned())]);
        std::fs::write(&path, paired.replace("[lora, adapter]", "[lora, houlsby]")).unwrap();
        let err = Experiment::load(&path, &registry, dir.path(), &Places::default()).unwrap_err().to_string();
        assert!(err.contains(":20: field `pairs`: `houlsby` is not the label"), "{err}");
    }

    #[test]
    fn fixed_length_padding_is_for_classification_only() {
        let dir = workspace();
        let path = dir.path().join("e.yaml");
        let glue = format!("glue_dir: {}", dir.path().join("glue").display());
        let padded =
            VALID.replace("glue_dir: glue", &glue).replace("  epochs: 2\n", "  epochs: 2\n  pad_to_max_len: true\n");
        std::fs::write(&path, &padded).unwrap();
        let registry = crate::registry::registry();
        let (exp, _) = Experiment::load(&path, &registry, dir.path(), &Places::default()).unwrap();
        assert!(exp.training.pad_to_max_len);
        std::fs::write(&path, padded.replace("tasks: [sst2]", "tasks: [wnut17]")).unwrap();
        let err = Experiment::load(&path, &registry, dir.path(), &Places::default()).unwrap_err().to_string();
        assert!(err.contains(":10: field `training.pad_to_max_len`"), "{err}");
    }

    #[test]
    fn grounding_tasks_need_their_section_and_train_alone() {
        let dir = workspace();
        let load = |text: &str| load_text(dir.path(), text);
        let base = one_size(dir.path());
        let err = load(&base.replace("tasks: [sst2]", "tasks: [tvg_fashion]")).unwrap_err();
        assert!(err.contains("need the `tvg` section"), "{err}");
        let with = |extra: &str| base.replace("tasks: [sst2]", &format!("tasks: [tvg_fashion]\ntvg: {extra}"));
        let err = load(&with("{vision: nowhere}")).unwrap_err();
        assert!(err.contains("field `tvg`: vision: ") && err.contains("no config.json"), "{err}");
        let err = load(&with("{frames: 8}")).unwrap_err();
        assert!(err.contains("vision: the constructed sets need a vision backbone"), "{err}");
        let charades = base.replace("tasks: [sst2]", "tasks: [charades_sta]\ntvg: {charades: {dir: sta, fps: 3}}");
        let err = load(&charades).unwrap_err();
        assert!(err.contains("field `tvg`: charades: ") && err.contains("has no sta_train.txt"), "{err}");
        let err = load(&charades.replace("fps: 3", "fps: 0")).unwrap_err();
        assert!(err.contains("field `tvg`: charades: fps must be a positive number"), "{err}");
        let err = load(&with("{vision: model, frames: 2}")).unwrap_err();
        assert!(err.contains("field `tvg`: frames: must be in 4..=64"), "{err}");
        let err =
            load(&with("{vision: model}").replace("tasks: [tvg_fashion]", "tasks: [tvg_fashion, sst2]")).unwrap_err();
        assert!(err.contains("train alone"), "{err}");
        let err = load(&base.replace("tasks: [sst2]", "tasks: [sst2]\ntvg: {vision: model}")).unwrap_err();
        assert!(err.contains("field `tvg`: only for temporal grounding tasks"), "{err}");
    }

    #[test]
    fn vision_language_tasks_train_among_themselves_and_may_share_a_method() {
        let dir = workspace();
        let load = |text: &str| load_text(dir.path(), text);
        let base = one_size(dir.path());
        let vl = base.replace("tasks: [sst2]", "tasks: [evqa, evqa_caption]");
        let shared = vl.replace("    label: adapter\n", "    label: adapter\n    shared: true\n");
        let exp = load(&shared).unwrap();
        assert!(exp.methods[1].shared && exp.vl.is_none());
        let err = load(&shared.replace("tasks: [evqa, evqa_caption]", "tasks: [evqa]")).unwrap_err();
        assert!(err.contains("methods[1] field `shared`: sharing needs at least two tasks"), "{err}");
        let err = load(&vl.replace("tasks: [evqa, evqa_caption]", "tasks: [evqa, sst2]")).unwrap_err();
        assert!(err.contains("train among themselves"), "{err}");
        let err = load(&vl.replace("data_sizes: [100]", "data_sizes: [4-shot]")).unwrap_err();
        assert!(err.contains("numbers of training images"), "{err}");
        let err = load(&format!("{vl}vl: {{patch: 12}}\n")).unwrap_err();
        assert!(err.contains("field `vl`: patch: must divide easy-VQA's 64"), "{err}");
        let err = load(&vl.replace("tasks: [evqa, evqa_caption]", "tasks: [vqav2]")).unwrap_err();
        assert!(err.contains("field `vl`: vqav2: the vqav2 task needs `vqav2: {dir}`"), "{err}");
        let err = load(&format!("{base}vl: {{patch: 8}}\n")).unwrap_err();
        assert!(err.contains("field `vl`: only for vision-language tasks"), "{err}");
        // Elsewhere sharing is still refused.
        let err = load(&shared.replace("tasks: [evqa, evqa_caption]", "tasks: [sst2, rte]")).unwrap_err();
        assert!(err.contains("field `shared`: only for summarization and vision-language tasks"), "{err}");
    }

    #[test]
    fn pcg_is_refused_outside_data_to_text() {
        let dir = workspace();
        let path = dir.path().join("e.yaml");
        let glue = format!("glue_dir: {}", dir.path().join("glue").display());
        let text = VALID.replace("glue_dir: glue", &glue).replace("  - method: houlsby\n", "  - method: pcg\n");
        std::fs::write(&path, &text).unwrap();
        let registry = crate::registry::registry();
        let err = Experiment::load(&path, &registry, dir.path(), &Places::default()).unwrap_err().to_string();
        assert!(err.contains(":16: methods[1] field `method`: pcg plans") && err.contains("`sst2`"), "{err}");
    }

    #[test]
    fn the_valid_file_loads_and_the_default_backbone_follows_the_assets_folder() {
        let dir = workspace();
        let path = dir.path().join("e.yaml");
        // A relative glue_dir is read from the current folder, as on the command line.
        let valid = VALID.replace("glue_dir: glue", &format!("glue_dir: {}", dir.path().join("glue").display()));
        std::fs::write(&path, &valid).unwrap();
        let registry = crate::registry::registry();
        let (exp, _) = Experiment::load(&path, &registry, dir.path(), &Places::default()).unwrap();
        assert_eq!(exp.backbone, dir.path().join("model"));
        std::fs::create_dir_all(dir.path().join("elsewhere/minilm")).unwrap();
        std::fs::copy(dir.path().join("model/config.json"), dir.path().join("elsewhere/minilm/config.json")).unwrap();
        std::fs::write(&path, valid.replace("backbone: model\n", "")).unwrap();
        let places = Places { assets: Some(Path::new("elsewhere")), ..Places::default() };
        let (exp, _) = Experiment::load(&path, &registry, dir.path(), &places).unwrap();
        assert_eq!(exp.backbone, dir.path().join("elsewhere/minilm"));
    }
}

//! Expanding an experiment into runs, skipping finished ones, and running the rest in order, each
//! record saved as soon as its run ends.

use crate::{
    experiment::{DataSize, Experiment, MethodSpec, SHIPPED, VISION},
    records::{self, Record, Status, Store},
    train::{self, TaskData},
};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pelt_core::Registry;
use pelt_data::{glue, shipped, Dataset, TextTokenizer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// One cell of the grid.
#[derive(Debug, Clone)]
pub struct RunId<'a> {
    /// The method spec.
    pub method: &'a MethodSpec,
    /// Task name.
    pub task: &'a str,
    /// Data size.
    pub size: DataSize,
    /// Seed.
    pub seed: u64,
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Repository root (for assets and the revision).
    pub root: PathBuf,
    /// Where suites are written.
    pub results: PathBuf,
    /// Folder of the shipped assets.
    pub assets: PathBuf,
    /// `(i, n)`: run only grid cells with index ≡ i (mod n).
    pub shard: (usize, usize),
    /// Device to train on.
    pub device: Device,
    /// Restricts the grid to these tasks, method labels and seeds (empty = all); records still land
    /// in the same suite, so a subset run now and the rest later merge into one table.
    pub only: Only,
    /// libtorch intra-op threads (0: the experiment's `training.threads`).
    pub threads: usize,
    /// Suite folders whose finished runs are taken over where they are the same run as a cell of this
    /// grid (see [`Record::reused_from`]) instead of training it again.
    pub reuse: Vec<PathBuf>,
}

/// Grid restrictions from `--tasks`, `--methods`, `--seeds`, `--sizes`.
#[derive(Debug, Clone, Default)]
pub struct Only {
    /// Task names.
    pub tasks: Vec<String>,
    /// Method labels.
    pub methods: Vec<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Data sizes.
    pub sizes: Vec<DataSize>,
}

impl Only {
    fn admits(&self, id: &RunId) -> bool {
        (self.tasks.is_empty() || self.tasks.iter().any(|t| t == id.task))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == id.method.label()))
            && (self.seeds.is_empty() || self.seeds.contains(&id.seed))
            && (self.sizes.is_empty() || self.sizes.contains(&id.size))
    }
}

/// Hash of everything that defines a run's result apart from task, size and seed. `regression`: the run
/// trains a regression head (see [`trains_regression`]).
pub fn config_hash(exp: &Experiment, m: &MethodSpec, resolved: &serde_json::Value, regression: bool) -> String {
    let mut value = serde_json::json!({
        "method": m.method, "config": resolved, "lr": m.lr,
        "training": serde_json::to_value(&exp.training).unwrap_or_default(),
        "backbone": exp.backbone.file_name().map(|f| f.to_string_lossy().into_owned()),
    });
    // Only transfer runs carry the key, so single-task suites keep their hashes (and records).
    if let (Some(t), true, Some(map)) = (&exp.transfer, m.transfer, value.as_object_mut()) {
        map.insert("transfer".into(), serde_json::to_value(t).unwrap_or_default());
    }
    // Likewise only summarization runs carry their decoding settings, and shared ones the task list.
    if let (true, Some(map)) = (exp.is_summarization(), value.as_object_mut()) {
        map.insert("generation".into(), serde_json::to_value(exp.generation()).unwrap_or_default());
        map.insert("warm_start".into(), exp.warm_start.into());
        if m.shared {
            map.insert("shared".into(), serde_json::to_value(&exp.tasks).unwrap_or_default());
        }
    }
    // Regression heads start at the mean training score (until 2026-11-27 they started at zero): runs
    // that train one carry the marker, so records made with the zero start are never taken for theirs,
    // and classification runs keep their hashes.
    if let (true, Some(map)) = (regression, value.as_object_mut()) {
        map.insert("regression_head".into(), "label_mean".into());
    }
    let text = value.to_string();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The method config with defaults filled in, as JSON for the record.
fn resolved_config(registry: &Registry, m: &MethodSpec) -> Result<serde_json::Value> {
    let entry = registry.get(&m.method)?;
    let mut merged = (entry.default_config)();
    if let (serde_yaml::Value::Mapping(base), serde_yaml::Value::Mapping(over)) = (&mut merged, &m.config) {
        for (k, v) in over {
            base.insert(k.clone(), v.clone());
        }
    }
    Ok(serde_json::to_value(merged)?)
}

/// Whether a run trains a regression head: its task is one (STS-B), or it is a transfer run with one
/// among the sources.
fn trains_regression(exp: &Experiment, id: &RunId) -> bool {
    let regression = |t: &str| glue::GlueTask::parse(t).is_some_and(glue::GlueTask::is_regression);
    regression(id.task) || (id.method.transfer && exp.transfer.iter().flat_map(|t| &t.sources).any(|s| regression(s)))
}

/// A name part safe in file names.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn run_key(id: &RunId, hash: &str) -> String {
    format!("{}__{}__{}__s{}__{hash}", clean(id.task), clean(id.method.label()), clean(&id.size.label()), id.seed)
}

/// Loads a task's examples from the shipped assets or the GLUE folder.
pub fn load_task(name: &str, exp: &Experiment, assets: &Path) -> Result<Dataset> {
    let data = match name {
        "rotten_tomatoes" => {
            shipped::rotten_tomatoes(&assets.join("rotten_tomatoes/rotten_tomatoes_corpus_full.csv.bz2"))
        }
        "bbc_news" => shipped::bbc_news(&assets.join("bbcnews")),
        other => {
            let task = glue::GlueTask::parse(other).ok_or_else(|| anyhow!("unknown task `{other}`"))?;
            let dir = exp.glue_dir.as_ref().ok_or_else(|| anyhow!("task `{other}` needs glue_dir"))?;
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
pub(crate) fn load_vision(name: &str, assets: &Path, user: Option<(&Path, usize)>) -> Result<TaskData> {
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

fn prepare(
    name: &str,
    exp: &Experiment,
    assets: &Path,
    tokenizer: Option<&TextTokenizer>,
    image_size: Option<i64>,
) -> Result<TaskData> {
    let user = exp.image_dirs.get(name).map(|d| (d.as_path(), image_size.unwrap_or(224) as usize));
    if VISION.contains(&name) || user.is_some() {
        return load_vision(name, assets, user);
    }
    let tokenizer = tokenizer.ok_or_else(|| anyhow!("task `{name}` is text: the backbone has no tokenizer.json"))?;
    let dataset = load_task(name, exp, assets)?;
    let train = tokenizer.encode(&dataset.train)?;
    let dev = dataset.dev.as_ref().map(|d| tokenizer.encode(d)).transpose()?;
    let test = tokenizer.encode(&dataset.test)?;
    Ok(TaskData { dataset, train, dev, test, pad_id: tokenizer.pad_id, images: None })
}

/// Runs a validated experiment; returns (ran, skipped, failed) counts.
pub fn sweep(exp: &Experiment, registry: &Registry, opts: &SweepOptions) -> Result<(usize, usize, usize)> {
    if let Some(dir) = opts.reuse.iter().find(|d| !d.join("records").is_dir()) {
        bail!("--reuse {}: not a suite folder (no records/ in it)", dir.display());
    }
    let store = Store::open(&opts.results.join(&exp.name))?;
    std::fs::write(store.dir().join("experiment.yaml"), serde_yaml::to_string(exp)?)?;
    // The command line's thread count wins over the file's: shards running side by side on one
    // machine split its cores without changing the runs' hashes.
    let threads = if opts.threads > 0 { opts.threads } else { exp.training.threads };
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }

    // The grid, in a fixed order: task, size, seed, method (so partial sweeps fill whole columns).
    let mut grid = Vec::new();
    for task in &exp.tasks {
        for &size in &exp.data_sizes {
            for &seed in &exp.seeds {
                for method in &exp.methods {
                    grid.push(RunId { method, task, size, seed });
                }
            }
        }
    }
    let (shard, shards) = opts.shard;
    let mut todo = Vec::new();
    let mut skipped = 0;
    // Shards deal out the runs the filters admit, not the whole grid: dealing the grid would hand a
    // `--methods` selection to whichever shards its methods' grid positions fall on (with an even
    // number of methods, always the same ones).
    let admitted: Vec<&RunId> = grid.iter().filter(|id| opts.only.admits(id)).collect();
    for (i, &id) in admitted.iter().enumerate() {
        // A shared method's cells of one (size, seed) come from one run over every task: they belong to
        // the shard of the first task's cell, so that no two shards train the same run.
        let i = if id.method.shared {
            admitted
                .iter()
                .position(|g| std::ptr::eq(g.method, id.method) && g.size == id.size && g.seed == id.seed)
                .unwrap_or(i)
        } else {
            i
        };
        if i % shards != shard {
            continue;
        }
        let resolved = resolved_config(registry, id.method)?;
        let hash = config_hash(exp, id.method, &resolved, trains_regression(exp, id));
        let key = run_key(id, &hash);
        if store.is_done(&key) {
            skipped += 1;
        } else {
            todo.push((id.clone(), key, hash, resolved));
        }
    }
    let announce = |skipped: usize, reused: usize, todo: usize| {
        eprintln!(
            "{}: {} runs in the grid, {} in this shard already done{}, {} to run",
            exp.name,
            grid.len(),
            skipped,
            if reused > 0 { format!(" ({reused} of them taken from --reuse suites)") } else { String::new() },
            todo
        )
    };
    if exp.is_summarization() {
        if !opts.reuse.is_empty() {
            bail!("--reuse takes over classification runs only; {} is a summarization suite", exp.name);
        }
        announce(skipped, 0, todo.len());
        if todo.is_empty() {
            return Ok((0, skipped, 0));
        }
        return summarization_sweep(exp, registry, opts, &store, todo, skipped);
    }
    if todo.is_empty() {
        announce(skipped, 0, 0);
        return Ok((0, skipped, 0));
    }
    let backbone = pelt_backbone::load(&exp.backbone, opts.device)
        .with_context(|| format!("loading backbone {}", exp.backbone.display()))?;
    let backbone = backbone.as_ref();
    // Selective methods move backbone weights; each run starts from this pristine copy.
    let pristine: Vec<(Tensor, Tensor)> =
        backbone.var_store().variables().into_values().map(|t| (t.shallow_clone(), t.detach().copy())).collect();
    // Vision backbones have no tokenizer.
    let tokenizer = match backbone.dims().image {
        None => Some(TextTokenizer::load(&exp.backbone.join("tokenizer.json"), exp.training.max_len)?),
        Some(_) => None,
    };
    // Every task this shard needs (its targets and any sources), tokenised once.
    let mut tasks: std::collections::HashMap<String, TaskData> = Default::default();
    let sources_needed = exp.transfer.iter().flat_map(|t| t.sources.iter().map(String::as_str));
    for name in todo.iter().map(|(id, ..)| id.task).chain(sources_needed) {
        if !tasks.contains_key(name) {
            let size = backbone.dims().image.map(|i| i.size);
            tasks.insert(name.to_owned(), prepare(name, exp, &opts.assets, tokenizer.as_ref(), size)?);
        }
    }
    let digests: std::collections::HashMap<&str, String> =
        tasks.iter().map(|(name, task)| (name.as_str(), data_digest(task))).collect();
    let reused = reuse_runs(exp, &store, &opts.reuse, &digests, &mut todo)?;
    announce(skipped + reused, reused, todo.len());
    skipped += reused;
    let sources = exp.transfer.as_ref().map(|t| train::Sources {
        transfer: t,
        tasks: t.sources.iter().map(|n| &tasks[n]).collect(),
        cache: store.dir().join("sources"),
    });
    let revision = records::revision(&opts.root);
    let machine = records::machine();

    let (_progress, runs_bar, steps_bar) = progress_bars(todo.len());

    let (mut ran, mut failed) = (0, 0);
    for (id, key, hash, resolved) in todo {
        // Another process (a shard with other filters, or a record put back by hand) may have finished
        // this run since the grid was dealt out.
        if store.is_done(&key) {
            runs_bar.inc(1);
            continue;
        }
        let task = &tasks[id.task];
        runs_bar.set_message(format!("{} {} {} s{}", id.task, id.method.label(), id.size.label(), id.seed));
        tch::no_grad(|| {
            for (dst, src) in &pristine {
                dst.shallow_clone().copy_(src);
            }
        });
        records::reset_peak_rss();
        let started = std::time::Instant::now();
        let source_key = format!("{}__s{}__{hash}", clean(id.method.label()), id.seed);
        let result = train::run(
            registry,
            backbone,
            id.method,
            task,
            id.size,
            id.seed,
            &exp.training,
            sources.as_ref().map(|s| (s, source_key.as_str())),
            opts.device,
            &steps_bar,
        );
        let wall = started.elapsed().as_secs_f64();
        let run = Finished {
            exp,
            id: &id,
            key: &key,
            hash,
            resolved,
            wall,
            revision: &revision,
            machine: &machine,
            data_digest: Some(digests[id.task].clone()),
        };
        if save(&store, run, result, opts.device, &runs_bar)? {
            failed += 1;
        }
        ran += 1;
        runs_bar.inc(1);
    }
    runs_bar.finish_and_clear();
    steps_bar.finish_and_clear();
    Ok((ran, skipped, failed))
}

/// SHA-256 (first 12 bytes, hex) of a task's examples as loaded: every split's texts and labels, and
/// an image task's pixels, so two runs with the same digest saw the same data.
fn data_digest(task: &TaskData) -> String {
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

/// Takes over, from the suites in `from`, every run of `todo` that one of them finished (ok or
/// diverged) with the same task, method, config hash, data size, seed and data digest, saving it here
/// under this suite's key and label; returns how many.
fn reuse_runs(
    exp: &Experiment,
    store: &Store,
    from: &[PathBuf],
    digests: &std::collections::HashMap<&str, String>,
    todo: &mut Vec<(RunId, String, String, serde_json::Value)>,
) -> Result<usize> {
    type Cell = (String, String, String, u64, String, String);
    let mut found: std::collections::HashMap<Cell, Record> = Default::default();
    for dir in from {
        for r in Store::open(dir)?.load_all()? {
            if let (true, Some(digest)) = (r.status != Status::Failed, r.data_digest.clone()) {
                let at =
                    (r.task.clone(), r.method_name.clone(), r.data_size.clone(), r.seed, r.config_hash.clone(), digest);
                found.entry(at).or_insert(r);
            }
        }
    }
    let mut taken = Vec::new();
    let mut kept = Vec::new();
    for (id, key, hash, resolved) in todo.drain(..) {
        let digest = digests[id.task].clone();
        let at = (id.task.to_owned(), id.method.method.clone(), id.size.label(), id.seed, hash.clone(), digest);
        match found.get(&at) {
            Some(r) => taken.push(Record {
                key: key.clone(),
                suite: exp.name.clone(),
                method: id.method.label().to_owned(),
                reused_from: Some(r.reused_from.clone().unwrap_or_else(|| r.suite.clone())),
                ..r.clone()
            }),
            None => kept.push((id, key, hash, resolved)),
        }
    }
    *todo = kept;
    if !taken.is_empty() {
        store.save_all(&taken)?;
    }
    Ok(taken.len())
}

/// The sweep's two bars: runs done of `runs`, and steps of the run in flight.
fn progress_bars(runs: usize) -> (MultiProgress, ProgressBar, ProgressBar) {
    let progress = MultiProgress::new();
    let runs_bar = progress.add(ProgressBar::new(runs as u64));
    runs_bar.set_style(
        ProgressStyle::with_template("runs  {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let steps_bar = progress.add(ProgressBar::new(0));
    steps_bar.set_style(
        ProgressStyle::with_template("steps {bar:30} {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    (progress, runs_bar, steps_bar)
}

/// A run that just ended, with what its record needs besides the outcome.
struct Finished<'a> {
    exp: &'a Experiment,
    id: &'a RunId<'a>,
    key: &'a str,
    hash: String,
    resolved: serde_json::Value,
    wall: f64,
    revision: &'a str,
    machine: &'a str,
    data_digest: Option<String>,
}

/// Saves a finished run's record and prints its summary line; returns whether the run failed.
fn save(
    store: &Store,
    run: Finished,
    result: Result<train::Outcome>,
    device: Device,
    runs_bar: &ProgressBar,
) -> Result<bool> {
    let Finished { exp, id, key, hash, resolved, wall, revision, machine, data_digest } = run;
    let mut record = Record {
        key: key.to_owned(),
        suite: exp.name.clone(),
        task: id.task.to_owned(),
        method: id.method.label().to_owned(),
        method_name: id.method.method.clone(),
        method_config: resolved,
        config_hash: hash,
        lr: id.method.lr,
        training: serde_json::to_value(&exp.training)?,
        data_size: id.size.label(),
        seed: id.seed,
        status: Status::Ok,
        message: None,
        metrics: Default::default(),
        score: None,
        best_dev_score: None,
        best_step: None,
        curve: Vec::new(),
        steps: 0,
        train_examples: 0,
        dev_examples: 0,
        test_examples: 0,
        method_params: 0,
        head_params: 0,
        backbone_params: 0,
        method_percent: 0.0,
        wall_seconds: wall,
        train_examples_per_second: 0.0,
        peak_rss_mib: records::peak_rss_mib(),
        diagnostics: Default::default(),
        pelt_revision: revision.to_owned(),
        libtorch_version: env!("PELT_LIBTORCH_VERSION").to_owned(),
        device: format!("{device:?}").to_lowercase(),
        machine: machine.to_owned(),
        finished_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        data_digest,
        reused_from: None,
    };
    let mut failed = false;
    let line = match result {
        Ok(o) => {
            if !o.samples.is_empty() {
                // Generated text beside the record: `<suite>/samples/<key>.tsv`, generated then reference.
                let lines: String = o
                    .samples
                    .iter()
                    .map(|(g, r)| format!("{}\t{}\n", g.replace(['\t', '\n'], " "), r.replace(['\t', '\n'], " ")))
                    .collect();
                let dir = store.dir().join("samples");
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                records::write_atomic(
                    &dir.join(format!("{key}.tsv")),
                    format!("generated\treference\n{lines}").as_bytes(),
                )?;
            }
            record.status = if o.diverged.is_some() { Status::Diverged } else { Status::Ok };
            record.message = o.diverged;
            record.metrics = o.metrics;
            record.score = o.score;
            record.best_dev_score = o.best_dev.map(|b| b.0);
            record.best_step = o.best_dev.map(|b| b.1);
            record.curve = o.curve;
            record.steps = o.steps;
            (record.train_examples, record.dev_examples, record.test_examples) = o.sizes;
            record.method_params = o.params.method;
            record.head_params = o.params.head;
            record.backbone_params = o.params.backbone;
            record.method_percent = o.params.method_percent();
            record.train_examples_per_second = o.train_eps;
            record.diagnostics = o.diagnostics;
            match record.score {
                Some(s) => format!(
                    "{:<10} {:<24} {:>6} s{:<3} test {:6.2}  dev {:6.2}@{:<5} {:>5} steps {:7.1} ex/s {:6.1}s {:6.0} MiB",
                    id.task, id.method.label(), id.size.label(), id.seed, s, record.best_dev_score.unwrap_or(f64::NAN),
                    record.best_step.unwrap_or(0), record.steps, record.train_examples_per_second, wall, record.peak_rss_mib
                ),
                None => format!("{} {} {} s{}: DIVERGED ({})", id.task, id.method.label(), id.size.label(), id.seed, record.message.as_deref().unwrap_or("")),
            }
        }
        Err(e) => {
            failed = true;
            record.status = Status::Failed;
            record.message = Some(format!("{e:#}"));
            format!("{} {} {} s{}: FAILED: {e:#}", id.task, id.method.label(), id.size.label(), id.seed)
        }
    };
    store.save(&record).with_context(|| format!("saving record {key}"))?;
    // A hidden bar (no terminal, as in CI) drops println: the summary line must still be seen.
    if runs_bar.is_hidden() {
        eprintln!("{line}");
    } else {
        runs_bar.println(line);
    }
    Ok(failed)
}

/// Loads a summarization task: BBC headlines and ACLSum from the assets, an XL-Sum language from the
/// experiment's folder.
fn load_summaries(name: &str, exp: &Experiment, assets: &Path) -> Result<pelt_data::summarization::SummarySplits> {
    use pelt_data::summarization as s;
    let hint = " (run the set-up: scripts/setup.sh)";
    match name {
        "bbc_headlines" => s::bbc_headlines(&assets.join("bbcnews")).map_err(|e| anyhow!("{e}{hint}")),
        "aclsum" => s::aclsum(&assets.join("aclsum")).map_err(|e| anyhow!("{e}{hint}")),
        other => {
            let language =
                other.strip_prefix("xlsum:").ok_or_else(|| anyhow!("unknown summarization task `{other}`"))?;
            let dir = exp.xlsum_dir.as_ref().ok_or_else(|| anyhow!("task `{other}` needs xlsum_dir"))?;
            s::xlsum(&dir.join(language)).map_err(|e| anyhow!("{e}"))
        }
    }
}

/// The encoder-decoder of a summarization experiment: its T5 / mT5, or a BERT2BERT warm-started from its
/// BERT-family backbone (the decoder's start, end and padding ids from the tokenizer).
fn load_seq2seq(
    exp: &Experiment,
    tokenizer: &TextTokenizer,
    device: Device,
) -> Result<Box<dyn pelt_backbone::Seq2Seq>> {
    let dims = pelt_backbone::dims_of(&exp.backbone)?;
    if dims.is_t5() {
        return Ok(Box::new(pelt_backbone::T5::load(&exp.backbone, device)?));
    }
    let id = |names: [&str; 2]| names.iter().find_map(|n| tokenizer.token_id(n));
    let ids = (id(["[CLS]", "<s>"]), id(["[SEP]", "</s>"]));
    let (Some(start), Some(eos)) = ids else {
        bail!(
            "{}: the tokenizer has neither [CLS]/[SEP] nor <s>/</s> to start and end summaries",
            exp.backbone.display()
        );
    };
    let special = pelt_backbone::seq2seq::SpecialIds { start, eos, pad: tokenizer.pad_id };
    Ok(Box::new(pelt_backbone::Bert2Bert::warm_start(&exp.backbone, special, 0, device)?))
}

/// The sweep of a summarization experiment: like [`sweep`]'s loop, with encoder-decoder runs; a shared
/// method's run covers every task of its (size, seed) and saves a record for each.
fn summarization_sweep(
    exp: &Experiment,
    registry: &Registry,
    opts: &SweepOptions,
    store: &Store,
    todo: Vec<(RunId, String, String, serde_json::Value)>,
    skipped: usize,
) -> Result<(usize, usize, usize)> {
    let tokenizer = TextTokenizer::load(&exp.backbone.join("tokenizer.json"), exp.training.max_len)?;
    let model = load_seq2seq(exp, &tokenizer, opts.device)
        .with_context(|| format!("loading the encoder-decoder from {}", exp.backbone.display()))?;
    let model = model.as_ref();
    let pristine: Vec<(Tensor, Tensor)> =
        model.var_store().variables().into_values().map(|t| (t.shallow_clone(), t.detach().copy())).collect();
    let g = exp.generation();
    let needed: Vec<&str> = if todo.iter().any(|(id, ..)| id.method.shared) {
        exp.tasks.iter().map(String::as_str).collect()
    } else {
        todo.iter().map(|(id, ..)| id.task).collect()
    };
    let mut tasks: std::collections::HashMap<String, crate::summarize::SummaryData> = Default::default();
    for name in needed {
        if !tasks.contains_key(name) {
            let splits = load_summaries(name, exp, &opts.assets)?;
            tasks.insert(name.to_owned(), crate::summarize::SummaryData::prepare(splits, &tokenizer, &g)?);
        }
    }
    let revision = records::revision(&opts.root);
    let machine = records::machine();
    let (_progress, runs_bar, steps_bar) = progress_bars(todo.len());
    let (mut ran, mut failed) = (0, 0);
    for (id, key, hash, resolved) in &todo {
        if store.is_done(key) {
            // Written by a shared run earlier in this loop.
            runs_bar.inc(1);
            continue;
        }
        runs_bar.set_message(format!("{} {} {} s{}", id.task, id.method.label(), id.size.label(), id.seed));
        tch::no_grad(|| {
            for (dst, src) in &pristine {
                dst.shallow_clone().copy_(src);
            }
        });
        records::reset_peak_rss();
        let started = std::time::Instant::now();
        // The tasks this run trains on, and the grid cells it answers.
        let names: Vec<&str> =
            if id.method.shared { exp.tasks.iter().map(String::as_str).collect() } else { vec![id.task] };
        let data: Vec<&crate::summarize::SummaryData> = names.iter().map(|n| &tasks[*n]).collect();
        let result = crate::summarize::run(
            registry,
            model,
            &tokenizer,
            id.method,
            &data,
            id.size,
            id.seed,
            &exp.training,
            &g,
            opts.device,
            &steps_bar,
        );
        let wall = started.elapsed().as_secs_f64();
        let outcomes: Vec<Result<train::Outcome>> = match result {
            Ok(all) => all.into_iter().map(Ok).collect(),
            Err(e) => names.iter().map(|_| Err(anyhow!("{e:#}"))).collect(),
        };
        for (name, outcome) in names.iter().zip(outcomes) {
            let cell = RunId { task: name, ..id.clone() };
            let cell_key = run_key(&cell, hash);
            if *name != id.task && store.is_done(&cell_key) {
                continue;
            }
            let run = Finished {
                exp,
                id: &cell,
                key: &cell_key,
                hash: hash.clone(),
                resolved: resolved.clone(),
                wall,
                revision: &revision,
                machine: &machine,
                data_digest: None,
            };
            if save(store, run, outcome, opts.device, &runs_bar)? {
                failed += 1;
            }
            ran += 1;
        }
        runs_bar.inc(1);
    }
    runs_bar.finish_and_clear();
    steps_bar.finish_and_clear();
    Ok((ran, skipped, failed))
}

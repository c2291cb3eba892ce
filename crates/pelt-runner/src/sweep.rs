//! Expanding an experiment into runs, skipping finished ones, and running the rest in order, each
//! record saved as soon as its run ends.

use crate::{
    experiment::{DataSize, Experiment, MethodSpec},
    host, weights,
};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pelt_classify::{Classification, TaskFiles};
use pelt_core::Registry;
use pelt_data::glue;
use pelt_records::{file_part, write_atomic, Record, Status, Store};
use pelt_seq2seq::Summarization;
use pelt_train::{Family, Outcome, Run};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use tch::Device;

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
    /// Keep each run's best-dev parameters as a pelt adapter folder, `<suite>/adapters/<key>/`
    /// (classification suites; see `pelt_interop::folder`).
    pub save_adapters: bool,
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
            && (self.methods.is_empty()
                || self.methods.iter().any(|m| {
                    // A searched entry's trials answer to the entry's label too.
                    let label = id.method.label();
                    m == label || pelt_report::budget::parse_trial(label).is_some_and(|(base, _)| m == base)
                }))
            && (self.seeds.is_empty() || self.seeds.contains(&id.seed))
            && (self.sizes.is_empty() || self.sizes.contains(&id.size))
    }
}

/// Hash of everything that defines a run's result apart from task, size and seed. `regression`: the run
/// trains a regression head (see [`trains_regression`]).
pub fn config_hash(exp: &Experiment, m: &MethodSpec, resolved: &serde_json::Value, regression: bool) -> String {
    // IDPG was registered as `pcg` until 2026-12-07, when PCG as published took the name: its runs hash
    // under the old name, so their records stay theirs.
    let method = if m.method == "idpg" { "pcg" } else { m.method.as_str() };
    let mut value = serde_json::json!({
        "method": method, "config": resolved, "lr": m.lr,
        "training": serde_json::to_value(&exp.training).unwrap_or_default(),
        "backbone": exp.backbone.file_name().map(|f| f.to_string_lossy().into_owned()),
    });
    // Only federated runs carry their settings, so centralised suites keep their hashes.
    if let (Some(f), Some(map)) = (&exp.federated, value.as_object_mut()) {
        // A run of a partitions axis hashes with its own partition only, so adding a partition to the
        // axis later leaves the other runs' hashes (and records) as they are.
        let own = m.partition.as_deref().and_then(|p| f.with_partition(p).ok()).unwrap_or_else(|| f.clone());
        map.insert("federated".into(), serde_json::to_value(own).unwrap_or_default());
        if !m.federated {
            map.insert("centralised".into(), true.into());
        }
    }
    // Only grounding runs carry their settings, the vision backbone by its folder's name (as the
    // backbone's), so hashes do not depend on where a machine keeps its assets.
    if let (Some(t), Some(map)) = (&exp.tvg, value.as_object_mut()) {
        let mut t = t.clone();
        t.vision = t.vision.as_deref().map(folder_name);
        if let Some(c) = t.charades.as_mut() {
            c.dir = folder_name(&c.dir);
        }
        map.insert("tvg".into(), serde_json::to_value(t).unwrap_or_default());
    }
    // Only vision-language runs carry their settings (the defaults where the file gives none).
    let vl = !exp.tasks.is_empty() && exp.tasks.iter().all(|t| pelt_vl::is_vl(t));
    if let (true, Some(map)) = (vl, value.as_object_mut()) {
        let mut settings = exp.vl.clone().unwrap_or_default();
        if let Some(v) = settings.vqav2.as_mut() {
            v.dir = folder_name(&v.dir);
        }
        map.insert("vl".into(), serde_json::to_value(settings).unwrap_or_default());
        // Shared runs leave a batch's unused tensors out of its step since 2026-12-08 (they got zeroed
        // gradients, so momentum and decay, before): records of the older runs are not theirs.
        if m.shared {
            map.insert("skip_unused".into(), true.into());
        }
    }
    // A shared instance and one per task are different runs; only shared runs carry the key, so the
    // others keep their hashes.
    if let (true, Some(map)) = (m.shared, value.as_object_mut()) {
        map.insert("shared".into(), true.into());
    }
    // Only primed NER runs carry the priming settings.
    if let (Some(p), false, Some(map)) = (&exp.priming, m.prime.is_none(), value.as_object_mut()) {
        map.insert("prime".into(), serde_json::to_value(m.prime).unwrap_or_default());
        map.insert("priming".into(), serde_json::to_value(p).unwrap_or_default());
    }
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

/// A folder by its name alone, as hashes hold user folders (so they do not depend on where a machine
/// keeps them).
fn folder_name(p: &std::path::Path) -> std::path::PathBuf {
    p.file_name().map(std::path::PathBuf::from).unwrap_or_default()
}

/// A run's key: its record's file name.
fn run_key(id: &RunId, hash: &str) -> String {
    let (task, label, size) = (file_part(id.task), file_part(id.method.label()), file_part(&id.size.label()));
    format!("{task}__{label}__{size}__s{}__{hash}", id.seed)
}

/// A cell still to run: its id, key, config hash and resolved method config.
type Todo<'a> = (RunId<'a>, String, String, serde_json::Value);

/// The training each cell belongs to, numbered in grid order: what shards deal out. A shared method's
/// cells of one (size, seed) come from one run over every task, one training dealt once (so no two
/// shards train it); every other cell is a training of its own. Dealing cells instead gave a shared run
/// the shard of its first task's cell, and with an odd number of entries every shared run fell on one
/// shard. Without shared entries the numbering is the cells' own, so such grids deal as they always have.
fn trainings(cells: &[&RunId]) -> Vec<usize> {
    let mut of_cell: Vec<usize> = Vec::with_capacity(cells.len());
    let mut count = 0;
    for (i, id) in cells.iter().enumerate() {
        let first = if id.method.shared {
            cells
                .iter()
                .position(|g| std::ptr::eq(g.method, id.method) && g.size == id.size && g.seed == id.seed)
                .unwrap_or(i)
        } else {
            i
        };
        if first == i {
            of_cell.push(count);
            count += 1;
        } else {
            of_cell.push(of_cell[first]);
        }
    }
    of_cell
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
    let trainings = trainings(&admitted);
    for (&id, &training) in admitted.iter().zip(&trainings) {
        if training % shards != shard {
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
    let announce = Announce { suite: &exp.name, grid: grid.len() };
    if exp.is_summarization() && !opts.reuse.is_empty() {
        bail!("--reuse takes over classification runs only; {} is a summarization suite", exp.name);
    }
    if exp.is_summarization() && opts.save_adapters {
        bail!("--save-adapters keeps classification runs' adapters only; {} is a summarization suite", exp.name);
    }
    if todo.is_empty() {
        announce.say(skipped, 0, 0);
        return Ok((0, skipped, 0));
    }
    // The weights every run of this sweep starts from, verified against the set-up's pin; a suite never
    // mixes runs of different weights.
    let weights = weights::verified(&exp.backbone)?;
    // The suite's records as the sweep starts, for the weights check here and the data check once the
    // tasks are loaded.
    let finished = store.load()?.records;
    if let Some(r) = finished.iter().find(|r| r.weights_digest.as_ref().is_some_and(|d| *d != weights)) {
        bail!(
            "{}: record {} was trained from weights with SHA-256 {}, but {} now has {weights}; a suite never mixes \
             runs of different weights: sweep into another --results folder, or put those weights back",
            store.dir().display(),
            r.key,
            r.weights_digest.as_deref().unwrap_or_default(),
            exp.backbone.display()
        );
    }
    let ctx = Drive { exp, opts, store: &store, finished: &finished, weights: &weights, announce };
    if exp.is_summarization() {
        let family = Summarization::load(
            registry,
            &exp.backbone,
            &opts.assets,
            exp.xlsum_dir.as_deref(),
            &exp.training,
            exp.generation(),
            opts.device,
        )?
        .d2t_dir(exp.d2t_dir.as_deref());
        drive(&family, &ctx, todo, skipped)
    } else if let Some(settings) = exp.tvg.as_ref().filter(|_| exp.tasks.iter().all(|t| pelt_vl::is_tvg(t))) {
        let family =
            pelt_vl::Grounding::load(registry, &exp.backbone, &opts.assets, settings, &exp.training, opts.device)?;
        drive(&family, &ctx, todo, skipped)
    } else if exp.tasks.iter().all(|t| pelt_vl::is_vl(t)) {
        let settings = exp.vl.clone().unwrap_or_default();
        let captions = exp.tasks.iter().any(|t| t == "evqa_caption");
        let family = pelt_vl::VisionLanguage::load(
            registry,
            &exp.backbone,
            &opts.assets,
            &settings,
            &exp.training,
            captions,
            opts.device,
        )?;
        drive(&family, &ctx, todo, skipped)
    } else if exp.tasks.iter().all(|t| pelt_tokens::is_ner(t)) {
        let files = pelt_tokens::NerFiles {
            ner_dir: exp.ner_dir.clone().unwrap_or_default(),
            dev_limit: exp.training.dev_limit,
            test_limit: exp.training.test_limit,
        };
        let family = pelt_tokens::Tokens::load(registry, &exp.backbone, files, &exp.training, opts.device)?
            .priming(exp.priming.clone().map(|p| (p, store.dir().join("primed"))))?;
        drive(&family, &ctx, todo, skipped)
    } else {
        let files = TaskFiles {
            assets: opts.assets.clone(),
            glue_dir: exp.glue_dir.clone(),
            image_dirs: exp.image_dirs.clone(),
            file_tasks: exp.file_tasks.clone(),
            root: opts.root.clone(),
        };
        let transfer = exp.transfer.as_ref().map(|t| (t, store.dir().join("sources")));
        let family = Classification::load(registry, &exp.backbone, files, &exp.training, transfer, opts.device)?
            .federated(exp.federated.clone());
        drive(&family, &ctx, todo, skipped)
    }
}

/// The line a sweep prints before it trains.
struct Announce<'a> {
    suite: &'a str,
    grid: usize,
}

impl Announce<'_> {
    fn say(&self, skipped: usize, reused: usize, todo: usize) {
        let taken = if reused > 0 { format!(" ({reused} of them taken from --reuse suites)") } else { String::new() };
        eprintln!(
            "{}: {} runs in the grid, {skipped} in this shard already done{taken}, {todo} to run",
            self.suite, self.grid
        );
    }
}

/// What [`drive`] needs besides the family and the runs.
struct Drive<'a> {
    exp: &'a Experiment,
    opts: &'a SweepOptions,
    store: &'a Store,
    /// The suite's records when the sweep started.
    finished: &'a [pelt_records::Record],
    weights: &'a str,
    announce: Announce<'a>,
}

/// Runs `todo` through a task family: prepares the tasks the runs need (all of the suite's when a
/// method is shared across them), takes over runs from `--reuse` suites, then trains the rest in
/// order, each record saved as soon as its run ends. A shared method's run covers every task of its
/// (size, seed) and saves a record for each. Returns (ran, skipped, failed).
fn drive<F: Family>(family: &F, ctx: &Drive, mut todo: Vec<Todo>, mut skipped: usize) -> Result<(usize, usize, usize)> {
    let Drive { exp, opts, store, finished, weights, .. } = *ctx;
    let needed: Vec<&str> = if todo.iter().any(|(id, ..)| id.method.shared) {
        exp.tasks.iter().map(String::as_str).collect()
    } else {
        todo.iter().map(|(id, ..)| id.task).collect()
    };
    let mut tasks: HashMap<String, F::Task> = HashMap::new();
    for name in needed {
        if !tasks.contains_key(name) {
            tasks.insert(name.to_owned(), family.prepare(name)?);
        }
    }
    let digests: HashMap<&str, String> =
        tasks.iter().filter_map(|(name, task)| Some((name.as_str(), family.digest(task)?))).collect();
    // As with weights, a suite never mixes runs of one task on different data (an edited file, another
    // GLUE folder): its table would average them as one cell.
    let changed = finished.iter().find_map(|r| match (r.data_digest.as_deref(), digests.get(r.task.as_str())) {
        (Some(old), Some(new)) if old != new => Some((r, new)),
        _ => None,
    });
    if let Some((r, now)) = changed {
        bail!(
            "{}: record {} was trained on `{}` data with digest {}, but the task now loads as {now}; a suite never \
             mixes runs of different data: sweep into another --results folder, or put the data back",
            store.dir().display(),
            r.key,
            r.task,
            r.data_digest.as_deref().unwrap_or_default()
        );
    }
    let reused = reuse_runs(exp, store, &opts.reuse, &digests, weights, &mut todo)?;
    ctx.announce.say(skipped + reused, reused, todo.len());
    skipped += reused;
    let revision = host::revision(&opts.root);
    let machine = host::machine();
    let (_progress, runs_bar, steps_bar) = progress_bars(todo.len());
    let (mut ran, mut failed) = (0, 0);
    for (id, key, hash, resolved) in &todo {
        // Another process (a shard with other filters, a shared run earlier in this loop, or a record
        // put back by hand) may have finished this run since the grid was dealt out.
        if store.is_done(key) {
            runs_bar.inc(1);
            continue;
        }
        runs_bar.set_message(format!("{} {} {} s{}", id.task, id.method.label(), id.size.label(), id.seed));
        family.restore_pretrained();
        host::reset_peak_rss();
        let started = std::time::Instant::now();
        // The tasks this run trains on, and the grid cells it answers.
        let names: Vec<&str> =
            if id.method.shared { exp.tasks.iter().map(String::as_str).collect() } else { vec![id.task] };
        let data: Vec<&F::Task> = names.iter().map(|n| &tasks[*n]).collect();
        let run = Run { spec: id.method, size: id.size, seed: id.seed, hash, keep: opts.save_adapters };
        let result = family.run(&run, &data, &steps_bar);
        let wall = started.elapsed().as_secs_f64();
        let outcomes: Vec<Result<Outcome>> = match result {
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
                data_digest: digests.get(name).cloned(),
                weights_digest: weights,
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

/// Takes over, from the suites in `from`, every run of `todo` that one of them finished (ok or
/// diverged) with the same task, method, config hash, data size, seed and data digest, saving it here
/// under this suite's key and label; returns how many.
fn reuse_runs(
    exp: &Experiment,
    store: &Store,
    from: &[PathBuf],
    digests: &HashMap<&str, String>,
    weights: &str,
    todo: &mut Vec<Todo>,
) -> Result<usize> {
    type Cell = (String, String, String, u64, String, String);
    let mut found: HashMap<Cell, Record> = HashMap::new();
    for dir in from {
        let loaded = Store::open(dir)?.load()?;
        for u in &loaded.unreadable {
            eprintln!("warning: --reuse {}: {} left out: {}", dir.display(), u.path.display(), u.error);
        }
        for r in loaded.records {
            // Never a run of other weights (records from before pelt kept the digest have none).
            let same_weights = r.weights_digest.as_deref().is_none_or(|d| d == weights);
            if let (true, true, Some(digest)) = (r.status != Status::Failed, same_weights, r.data_digest.clone()) {
                let at =
                    (r.task.clone(), r.method_name.clone(), r.data_size.clone(), r.seed, r.config_hash.clone(), digest);
                found.entry(at).or_insert(r);
            }
        }
    }
    let mut taken = Vec::new();
    let mut kept = Vec::new();
    for (id, key, hash, resolved) in todo.drain(..) {
        let Some(digest) = digests.get(id.task).cloned() else {
            kept.push((id, key, hash, resolved));
            continue;
        };
        let at = (id.task.to_owned(), id.method.method.clone(), id.size.label(), id.seed, hash.clone(), digest);
        match found.get(&at) {
            Some(r) => taken.push(Record {
                key: key.clone(),
                suite: exp.name.clone(),
                method: id.method.label().to_owned(),
                reused_from: Some(r.reused_from.clone().unwrap_or_else(|| r.suite.clone())),
                weights_digest: Some(weights.to_owned()),
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
    weights_digest: &'a str,
}

/// Saves a finished run's record and prints its summary line; returns whether the run failed.
fn save(store: &Store, run: Finished, result: Result<Outcome>, device: Device, runs_bar: &ProgressBar) -> Result<bool> {
    let Finished { exp, id, key, hash, resolved, wall, revision, machine, data_digest, weights_digest } = run;
    let origin = serde_json::json!({
        "key": key, "suite": exp.name, "label": id.method.label(), "lr": id.method.lr,
        "data_size": id.size.label(), "seed": id.seed, "config_hash": hash,
    });
    let method_config = resolved.clone();
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
        peak_rss_mib: host::peak_rss_mib(),
        diagnostics: Default::default(),
        pelt_revision: revision.to_owned(),
        libtorch_version: env!("PELT_LIBTORCH_VERSION").to_owned(),
        device: format!("{device:?}").to_lowercase(),
        machine: machine.to_owned(),
        finished_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        data_digest,
        reused_from: None,
        weights_digest: Some(weights_digest.to_owned()),
        eval_examples_per_second: None,
        numerics: Some(pelt_records::NUMERICS),
        precision: Some(exp.training.precision.as_str().to_owned()),
    };
    let mut failed = false;
    let line = match result {
        Ok(mut o) => {
            if let Some(checkpoint) = o.checkpoint.take() {
                // The adapter first: a record is what marks a run done, so a run cut short between the
                // two is trained again rather than left without its adapter.
                let dir = store.dir().join("adapters").join(key);
                std::fs::create_dir_all(store.dir().join("adapters"))
                    .with_context(|| format!("creating {}", store.dir().join("adapters").display()))?;
                let meta = pelt_interop::folder::AdapterMeta {
                    format: String::new(),
                    version: 0,
                    method: id.method.method.clone(),
                    config: method_config,
                    origin,
                    backbone: exp.backbone.display().to_string(),
                    backbone_digest: Some(weights_digest.to_owned()),
                    run: checkpoint.meta,
                    tensors_sha256: String::new(),
                };
                pelt_interop::folder::write(&dir, meta, &checkpoint.tensors)
                    .with_context(|| format!("saving the adapter of {key}"))?;
            }
            if !o.samples.is_empty() {
                // Outputs beside the record: `<suite>/samples/<key>.tsv`, input, generated, reference.
                let cell = |s: &str| s.replace(['\t', '\n'], " ");
                let lines: String = o
                    .samples
                    .iter()
                    .map(|s| format!("{}\t{}\t{}\n", cell(&s.input), cell(&s.generated), cell(&s.reference)))
                    .collect();
                let dir = store.dir().join("samples");
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                let text = format!("input\tgenerated\treference\n{lines}");
                write_atomic(&dir.join(format!("{key}.tsv")), text.as_bytes())?;
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
            record.eval_examples_per_second = o.eval_eps;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_deal_a_shared_run_once_and_the_trainings_evenly() {
        let spec = |text: &str| -> MethodSpec { serde_yaml::from_str(text).unwrap() };
        // VL-Adapter's shape: a per-task entry and a shared one, two tasks, two seeds; the grid's order is
        // task, size, seed, method.
        let methods = [spec("method: lora\nlr: 1.0e-3"), spec("method: lora\nlabel: s\nlr: 1.0e-3\nshared: true")];
        let size = DataSize::parse("200").unwrap();
        let mut cells = Vec::new();
        for task in ["evqa", "evqa_caption"] {
            for seed in [1, 2] {
                cells.extend(methods.iter().map(|method| RunId { method, task, size, seed }));
            }
        }
        let refs: Vec<&RunId> = cells.iter().collect();
        // The caption cells of the shared runs (5 and 7) are the evqa cells' trainings (1 and 3).
        assert_eq!(trainings(&refs), [0, 1, 2, 3, 4, 1, 5, 3]);
        // Six trainings, three a shard. Dealing cells gave shard 0 all four per-task runs and shard 1
        // the two shared ones.
        let on = |shard: usize| {
            let mut mine: Vec<usize> = trainings(&refs).into_iter().filter(|t| t % 2 == shard).collect();
            mine.sort_unstable();
            mine.dedup();
            mine.len()
        };
        assert_eq!((on(0), on(1)), (3, 3));
        // Without shared entries every cell is its own training.
        let single = [spec("method: lora\nlr: 1.0e-3")];
        let cells: Vec<RunId> =
            ["a", "b", "c"].iter().map(|task| RunId { method: &single[0], task, size, seed: 1 }).collect();
        assert_eq!(trainings(&cells.iter().collect::<Vec<_>>()), [0, 1, 2]);
    }
}

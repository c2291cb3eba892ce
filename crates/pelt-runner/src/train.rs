//! One training run: sample the data, build the method and head, train with AdamW under a warm-up +
//! linear-decay schedule and gradient clipping, select the best dev checkpoint, evaluate on test.

use crate::{
    experiment::{DataSize, EvalEvery, MethodSpec, Sampling, Training, Transfer},
    optim::AdamW,
    records::CurvePoint,
};
use anyhow::{anyhow, Context, Result};
use indicatif::ProgressBar;
use pelt_backbone::{ClassificationHead, Pooling};
use pelt_core::{params, Backbone, ImageDims, Inputs, Method, ParamCount, Registry};
use pelt_data::{sampler, tokenize::pad, vision::ImageSet, Dataset, Encoding, Label, LabelSpace};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::{collections::BTreeMap, path::PathBuf};
use tch::{Device, Kind, Tensor};

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
pub(crate) enum SplitName {
    Train,
    Dev,
    Test,
}

impl TaskData {
    /// A split as the backbone takes it: token encodings, or images resized to `image`.
    pub(crate) fn source(&self, split: SplitName, image: Option<ImageDims>) -> Option<Source<'_>> {
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
        Some(Source::Text { enc, pad_id: self.pad_id })
    }
}

/// The examples of one split as a backbone takes them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Token encodings, padded per batch.
    Text { enc: &'a [Encoding], pad_id: i64 },
    /// Images, resized and normalised per batch to the backbone's input.
    Images { set: &'a ImageSet, dims: ImageDims },
}

impl Source<'_> {
    /// Inputs for the examples `rows` of the split.
    pub(crate) fn batch(&self, rows: &[usize], device: Device) -> Inputs {
        match self {
            Source::Text { enc, pad_id } => {
                let batch: Vec<&Encoding> = rows.iter().map(|&i| &enc[i]).collect();
                inputs(&batch, *pad_id, device)
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
    pub(crate) fn length(&self, i: usize) -> usize {
        match self {
            Source::Text { enc, .. } => enc[i].ids.len(),
            Source::Images { .. } => 0,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when training finished; `Some(message)` when the loss diverged.
    pub diverged: Option<String>,
    /// Test metrics, 0–100.
    pub metrics: BTreeMap<String, f64>,
    /// Mean of the test metrics.
    pub score: Option<f64>,
    /// Best dev score and its step.
    pub best_dev: Option<(f64, usize)>,
    /// Every dev evaluation (kept when the run diverged too, up to the last evaluation before).
    pub curve: Vec<CurvePoint>,
    /// Steps taken.
    pub steps: usize,
    /// Split sizes.
    pub sizes: (usize, usize, usize),
    /// Parameter counts.
    pub params: ParamCount,
    /// Training examples per second.
    pub train_eps: f64,
    /// Method diagnostics.
    pub diagnostics: BTreeMap<String, f64>,
    /// A few test outputs with their references (generated summaries), kept beside the record.
    pub samples: Vec<(String, String)>,
}

/// Model selection while training: every dev evaluation with the mean training loss since the one
/// before, and a copy of the trainable tensors at the best dev score so far (the earliest one on a tie),
/// which [`Selection::restore_best`] puts back before the test evaluation. Classification and
/// summarization runs share it.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    best: Option<(f64, usize, Vec<Tensor>)>,
    curve: Vec<CurvePoint>,
    loss_sum: f64,
    loss_steps: usize,
}

impl Selection {
    /// Counts one training step's loss towards the next evaluation's mean.
    pub(crate) fn add_loss(&mut self, loss: f64) {
        self.loss_sum += loss;
        self.loss_steps += 1;
    }

    /// Records the dev score after `step` steps; copies `params` when it beats every earlier one.
    pub(crate) fn observe(&mut self, step: usize, dev: f64, params: &[(String, Tensor)]) {
        let train_loss = if self.loss_steps == 0 { f64::NAN } else { self.loss_sum / self.loss_steps as f64 };
        self.curve.push(CurvePoint { step, dev, train_loss });
        (self.loss_sum, self.loss_steps) = (0.0, 0);
        if self.best.as_ref().is_none_or(|b| dev > b.0) {
            let snapshot = tch::no_grad(|| params.iter().map(|(_, t)| t.detach().copy()).collect());
            self.best = Some((dev, step, snapshot));
        }
    }

    /// Copies the best snapshot back into `params` (the same list, in the same order, as
    /// [`Selection::observe`] saw) and returns its dev score and step; `None` when nothing was evaluated.
    pub(crate) fn restore_best(&self, params: &[(String, Tensor)]) -> Option<(f64, usize)> {
        let (score, step, snapshot) = self.best.as_ref()?;
        tch::no_grad(|| {
            for ((_, t), saved) in params.iter().zip(snapshot) {
                t.shallow_clone().copy_(saved);
            }
        });
        Some((*score, *step))
    }

    /// The dev curve so far.
    pub(crate) fn curve(&self) -> &[CurvePoint] {
        &self.curve
    }
}

/// One labelled example set: indices into a split plus their gold labels.
struct Subset<'a> {
    source: Source<'a>,
    idx: Vec<usize>,
    gold: Vec<Label>,
}

impl Subset<'_> {
    fn len(&self) -> usize {
        self.idx.len()
    }

    /// Inputs for the subset's members at positions `rows`.
    fn batch(&self, rows: &[usize], device: Device) -> Inputs {
        self.source.batch(&rows.iter().map(|&r| self.idx[r]).collect::<Vec<_>>(), device)
    }

    fn lengths(&self) -> Vec<usize> {
        self.idx.iter().map(|&i| self.source.length(i)).collect()
    }
}

fn subset<'a>(source: Source<'a>, examples: &[pelt_data::Example], idx: &[usize]) -> Subset<'a> {
    Subset { source, idx: idx.to_vec(), gold: idx.iter().map(|&i| examples[i].label).collect() }
}

/// First `limit` indices of a fixed (seed 0) shuffle of 0..n: a reproducible cap on a fixed split.
pub(crate) fn capped(n: usize, limit: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if limit > 0 && limit < n {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
        idx.truncate(limit);
        idx.sort_unstable();
    }
    idx
}

pub(crate) fn inputs(batch: &[&Encoding], pad_id: i64, device: Device) -> Inputs {
    let p = pad(batch, pad_id);
    let shape = [p.rows as i64, p.len as i64];
    Inputs::text(
        Tensor::from_slice(&p.ids).view(shape).to_device(device),
        Tensor::from_slice(&p.mask).view(shape).to_device(device),
        Tensor::from_slice(&p.type_ids).view(shape).to_device(device),
    )
}

/// Batches of indices in which lengths are similar: shuffle, sort within windows of 50 batches, cut,
/// shuffle the batches. Padding per batch then stays small without giving up randomness.
pub(crate) fn bucketed_batches(lengths: &[usize], batch: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..lengths.len()).collect();
    idx.shuffle(rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in idx.chunks_mut(batch * 50) {
        window.sort_by_key(|&i| lengths[i]);
        batches.extend(window.chunks(batch).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

/// Labels as a tensor: class indices (int64) or scores (float).
pub(crate) fn label_tensor(gold: &[Label], device: Device) -> Tensor {
    match gold.first() {
        Some(Label::Score(_)) => {
            Tensor::from_slice(&gold.iter().map(|l| l.value() as f32).collect::<Vec<_>>()).to_device(device)
        }
        _ => Tensor::from_slice(&gold.iter().map(|l| l.value() as i64).collect::<Vec<_>>()).to_device(device),
    }
}

pub(crate) fn loss_of(logits: &Tensor, labels: &Tensor, space: &LabelSpace) -> Tensor {
    match space {
        LabelSpace::Regression => (logits.squeeze_dim(-1) - labels).square().mean(Kind::Float),
        LabelSpace::Classes(_) => logits.cross_entropy_for_logits(labels),
    }
}

fn predictions(logits: &Tensor, space: &LabelSpace) -> Vec<f64> {
    let t = match space {
        LabelSpace::Regression => logits.squeeze_dim(-1).to_kind(Kind::Double),
        LabelSpace::Classes(_) => logits.argmax(-1, false).to_kind(Kind::Double),
    };
    Vec::<f64>::try_from(t.to_device(Device::Cpu)).unwrap_or_default()
}

/// Everything the loop needs that does not change between steps.
struct Ctx<'a> {
    backbone: &'a dyn Backbone,
    method: &'a dyn Method,
    head: &'a ClassificationHead,
    task: &'a TaskData,
    training: &'a Training,
    device: Device,
    /// Pooled features of frozen-backbone runs (head only), keyed by split; `None` when the backbone
    /// path has trainable parameters and must run every step.
    frozen: bool,
}

impl Ctx<'_> {
    /// Pooled features of a subset in eval mode (for the frozen fast path), in subset order.
    fn features(&self, set: &Subset) -> Tensor {
        let bs = self.training.eval_batch_size;
        let order = by_length(set);
        let mut parts: Vec<Tensor> = (0..set.len()).map(|_| Tensor::new()).collect();
        tch::no_grad(|| {
            for chunk in order.chunks(bs) {
                let out = self.backbone.forward(&set.batch(chunk, self.device), self.method, false);
                let pooled = self.head.pool(&out);
                for (row, &i) in chunk.iter().enumerate() {
                    parts[i] = pooled.get(row as i64);
                }
            }
        });
        Tensor::stack(&parts, 0)
    }

    /// Metrics (0–100) of the current weights on a subset.
    fn evaluate(&self, set: &Subset, cached: Option<&Tensor>) -> BTreeMap<String, f64> {
        let space = &self.task.dataset.labels;
        let mut pred = vec![0.0; set.len()];
        tch::no_grad(|| match cached {
            Some(features) => {
                let logits = self.head.forward_pooled(features, false);
                pred = predictions(&logits, space);
            }
            None => {
                for chunk in by_length(set).chunks(self.training.eval_batch_size) {
                    let out = self.backbone.forward(&set.batch(chunk, self.device), self.method, false);
                    for (&i, p) in chunk.iter().zip(predictions(&self.head.forward(&out, false), space)) {
                        pred[i] = p;
                    }
                }
            }
        });
        let gold: Vec<f64> = set.gold.iter().map(|l| l.value()).collect();
        self.task.dataset.metrics.iter().map(|m| (m.name().to_owned(), 100.0 * m.compute(&pred, &gold))).collect()
    }
}

/// Positions of a subset sorted by length, so evaluation batches carry little padding.
fn by_length(set: &Subset) -> Vec<usize> {
    let lengths = set.lengths();
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order
}

/// The classification head for a backbone: mean pooling over tokens for text encoders (how
/// all-MiniLM-L6-v2 was trained to embed), the class token for a ViT (as ViT classifiers are trained).
pub(crate) fn head_for(backbone: &dyn Backbone, outputs: i64, device: Device) -> ClassificationHead {
    let pooling = if backbone.dims().image.is_some() { Pooling::Cls } else { Pooling::Mean };
    ClassificationHead::new(backbone.dims().hidden, outputs, pooling, 0.1, device)
}

/// The head for a task trained on `gold`: a regression head starts its output at the mean training
/// score (see [`ClassificationHead::start_at`]); classifiers keep HF's zero bias.
fn task_head(backbone: &dyn Backbone, space: &LabelSpace, gold: &[Label], device: Device) -> ClassificationHead {
    let head = head_for(backbone, space.outputs(), device);
    if *space == LabelSpace::Regression && !gold.is_empty() {
        head.start_at(gold.iter().map(|l| l.value()).sum::<f64>() / gold.len() as f64);
    }
    head
}

fn mean(values: &BTreeMap<String, f64>) -> f64 {
    values.values().sum::<f64>() / values.len().max(1) as f64
}

/// Source tasks of a transfer experiment, prepared once per sweep.
#[derive(Debug)]
pub struct Sources<'a> {
    /// The protocol's settings.
    pub transfer: &'a Transfer,
    /// The source tasks, in the order of `transfer.sources` (task id = index).
    pub tasks: Vec<&'a TaskData>,
    /// Folder for source-trained checkpoints, one per (method, seed).
    pub cache: PathBuf,
}

/// The learning rate at `step` of `total`: linear warm-up over `warmup` steps, then linear decay to 0.
pub(crate) fn schedule(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else {
        peak * (total - step) as f64 / (total - warmup).max(1) as f64
    }
}

/// Stage one of the transfer protocol: trains the method on every source task (each step one task's
/// batch, with that task's own head and task id), or loads the result of an earlier run with the same
/// method, seed and settings. Returns diagnostics (`source_steps`, `source_loss_<task>`: mean loss of
/// each source over the last quarter of its steps), or an error message when the loss diverged.
#[allow(clippy::too_many_arguments)]
fn train_sources(
    backbone: &dyn Backbone,
    method: &mut dyn Method,
    sources: &Sources,
    key: &str,
    lr: f64,
    seed: u64,
    training: &Training,
    device: Device,
    bar: &ProgressBar,
) -> Result<std::result::Result<BTreeMap<String, f64>, String>> {
    let tr = sources.transfer;
    method.begin_sources(sources.tasks.len())?;
    let checkpoint = sources.cache.join(format!("{key}.safetensors"));
    let summary = sources.cache.join(format!("{key}.json"));
    if checkpoint.is_file() && summary.is_file() {
        pelt_core::store::load_trainable(backbone, method, &checkpoint)?;
        let text = std::fs::read_to_string(&summary).with_context(|| format!("reading {}", summary.display()))?;
        let diagnostics = serde_json::from_str(&text).with_context(|| format!("parsing {}", summary.display()))?;
        bar.suspend(|| eprintln!("{key}: source stage loaded from {}", checkpoint.display()));
        return Ok(Ok(diagnostics));
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x50_75_72_63_65);
    // Each source's examples: a seeded sample of `examples_per_source`, or all of its training pool.
    let pools: Vec<Vec<usize>> = sources
        .tasks
        .iter()
        .map(|t| {
            let mut idx: Vec<usize> = (0..t.dataset.train.len()).collect();
            idx.shuffle(&mut rng);
            if tr.examples_per_source > 0 {
                idx.truncate(tr.examples_per_source);
            }
            idx
        })
        .collect();
    let weights: Vec<f64> = pools
        .iter()
        .map(|p| match tr.sampling {
            Sampling::Proportional => p.len() as f64,
            Sampling::Uniform => 1.0,
        })
        .collect();
    let heads: Vec<ClassificationHead> = sources
        .tasks
        .iter()
        .zip(&pools)
        .map(|(t, pool)| {
            let gold: Vec<Label> = pool.iter().map(|&i| t.dataset.train[i].label).collect();
            task_head(backbone, &t.dataset.labels, &gold, device)
        })
        .collect();
    let mut params = params::prepare_training(backbone, method);
    for (i, h) in heads.iter().enumerate() {
        params.extend(h.var_store().variables().into_iter().map(|(n, t)| (format!("head{i}.{n}"), t)));
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut opt = AdamW::new(&params, training.weight_decay).method_rates(&*method, lr);
    let warmup = (training.warmup_ratio * tr.steps as f64).round() as usize;
    // Each task's batches come length-bucketed, as in target training, and are redrawn once used up.
    let mut queues: Vec<Vec<Vec<usize>>> = vec![Vec::new(); pools.len()];
    let mut late_loss = vec![(0.0, 0usize); pools.len()];
    bar.set_length(tr.steps as u64);
    bar.set_position(0);
    let total_weight: f64 = weights.iter().sum();
    for step in 0..tr.steps {
        // Draw the step's task, then its next batch (reshuffling a task's pool when it runs out).
        let mut pick = rng.random::<f64>() * total_weight;
        let task = weights.iter().position(|w| {
            pick -= w;
            pick < 0.0
        });
        let task = task.unwrap_or(pools.len() - 1);
        let pool = &pools[task];
        let data = sources.tasks[task];
        let source = data
            .source(SplitName::Train, backbone.dims().image)
            .ok_or_else(|| anyhow!("{}: no training split", tr.sources[task]))?;
        if queues[task].is_empty() {
            let lengths: Vec<usize> = pool.iter().map(|&i| source.length(i)).collect();
            queues[task] = bucketed_batches(&lengths, training.batch_size, &mut rng);
        }
        let batch: Vec<usize> = queues[task].pop().unwrap_or_default().into_iter().map(|j| pool[j]).collect();
        let gold: Vec<Label> = batch.iter().map(|&i| data.dataset.train[i].label).collect();
        let ids = Tensor::full([batch.len() as i64], task as i64, (Kind::Int64, device));
        method.set_task_ids(Some(&ids));
        let logits = heads[task].forward(&backbone.forward(&source.batch(&batch, device), &*method, true), true);
        let loss = loss_of(&logits, &label_tensor(&gold, device), &data.dataset.labels);
        let value = match opt.train_step(&loss, &*method, training.max_grad_norm, schedule(lr, step, warmup, tr.steps))
        {
            Ok(v) => v,
            Err(value) => {
                method.set_task_ids(None);
                return Ok(Err(format!("source training loss became {value} at step {step} ({})", tr.sources[task])));
            }
        };
        if step >= tr.steps * 3 / 4 {
            late_loss[task].0 += value;
            late_loss[task].1 += 1;
        }
        bar.set_position(step as u64 + 1);
    }
    method.set_task_ids(None);
    let mut diagnostics = BTreeMap::from([("source_steps".to_owned(), tr.steps as f64)]);
    for (name, (sum, n)) in tr.sources.iter().zip(&late_loss) {
        if *n > 0 {
            diagnostics.insert(format!("source_loss_{name}"), sum / *n as f64);
        }
    }
    std::fs::create_dir_all(&sources.cache).with_context(|| format!("creating {}", sources.cache.display()))?;
    pelt_core::store::save_trainable(backbone, method, &checkpoint)?;
    let tmp = summary.with_extension("json.partial");
    std::fs::write(&tmp, serde_json::to_string_pretty(&diagnostics)?)?;
    std::fs::rename(&tmp, &summary)?;
    bar.suspend(|| eprintln!("{key}: source stage trained, {} steps on {}", tr.steps, tr.sources.join(", ")));
    Ok(Ok(diagnostics))
}

/// Trains and evaluates one (method, task, size, seed). The backbone must hold its pretrained
/// weights on entry; selective methods change them, and the caller restores them afterwards.
#[allow(clippy::too_many_arguments)]
pub fn run(
    registry: &Registry,
    backbone: &dyn Backbone,
    spec: &MethodSpec,
    task: &TaskData,
    size: DataSize,
    seed: u64,
    training: &Training,
    sources: Option<(&Sources, &str)>,
    device: Device,
    bar: &ProgressBar,
) -> Result<Outcome> {
    let ds = &task.dataset;
    // Data for this run.
    let split = match size {
        DataSize::Examples(k) => sampler::low_resource(ds.train.len(), Some(k), ds.dev.is_some(), seed),
        DataSize::All => sampler::low_resource(ds.train.len(), None, ds.dev.is_some(), seed),
        DataSize::Shot(k) => {
            let classes = match &ds.labels {
                LabelSpace::Classes(c) => c.len(),
                LabelSpace::Regression => {
                    return Err(anyhow!("{}: k-shot sampling needs a classification task", ds.name))
                }
            };
            sampler::k_shot(&ds.train, classes, k, seed)
        }
    }
    .with_context(|| format!("sampling {} examples of {}", size.label(), ds.name))?;
    let image = backbone.dims().image;
    let source = |split| task.source(split, image).ok_or_else(|| anyhow!("{}: no {split:?} split", ds.name));
    let train = subset(source(SplitName::Train)?, &ds.train, &split.train);
    let dev = match (&ds.dev, size) {
        (Some(examples), DataSize::Examples(_) | DataSize::All) => {
            subset(source(SplitName::Dev)?, examples, &capped(examples.len(), training.dev_limit))
        }
        _ => {
            let mut idx = split.dev_from_train.clone();
            idx.truncate(training.dev_limit);
            subset(source(SplitName::Train)?, &ds.train, &idx)
        }
    };
    let test = subset(source(SplitName::Test)?, &ds.test, &capped(ds.test.len(), training.test_limit));
    if dev.len() == 0 {
        return Err(anyhow!("{}: no dev examples left for model selection at size {}", ds.name, size.label()));
    }

    // Method and head, seeded.
    pelt_core::manual_seed(seed as i64);
    let entry = registry.get(&spec.method)?;
    let mut method = (entry.build)(&spec.config, backbone.dims(), device)?;
    method.init_from(backbone);
    let mut source_diagnostics = BTreeMap::new();
    if let Some((src, key)) = sources.filter(|_| spec.transfer) {
        match train_sources(backbone, method.as_mut(), src, key, spec.lr, seed, training, device, bar)? {
            Ok(d) => source_diagnostics = d,
            Err(message) => {
                let counts = params::count(backbone, method.as_ref(), 0);
                return Ok(Outcome {
                    diverged: Some(message),
                    metrics: BTreeMap::new(),
                    score: None,
                    best_dev: None,
                    curve: Vec::new(),
                    steps: 0,
                    sizes: (0, 0, 0),
                    params: counts,
                    train_eps: 0.0,
                    diagnostics: BTreeMap::new(),
                    samples: Vec::new(),
                });
            }
        }
        // The target's fresh parameters are drawn from a generator state that does not depend on
        // whether source training ran now or was loaded from an earlier run.
        pelt_core::manual_seed(seed as i64 ^ 0x7a);
        method.begin_target()?;
    }
    let head = task_head(backbone, &ds.labels, &train.gold, device);
    let trainable = params::prepare_training(backbone, method.as_ref());
    let mut all_params: Vec<(String, Tensor)> = trainable.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    all_params.extend(head.var_store().variables().into_iter().map(|(n, t)| (format!("head.{n}"), t)));
    all_params.sort_by(|a, b| a.0.cmp(&b.0));
    let ctx =
        Ctx { backbone, method: method.as_ref(), head: &head, task, training, device, frozen: trainable.is_empty() };

    // SNIP-style pruning scores weights by the loss gradient at init, with the freshly initialised head:
    // the first examples of this seed's shuffled draw, dropout off, each batch's mean-loss gradient
    // summed (SparseAdapter's reference code). The step loop zeroes these gradients before its first
    // backward.
    pelt_core::run_calibration(method.as_ref(), train.len(), training.batch_size, |chunk| {
        let gold: Vec<Label> = chunk.iter().map(|&i| train.gold[i]).collect();
        let logits = head.forward(&backbone.forward(&train.batch(chunk, device), method.as_ref(), false), false);
        loss_of(&logits, &label_tensor(&gold, device), &ds.labels)
    });
    // Calibration may prune: count after it.
    let counts = params::count(backbone, method.as_ref(), params::numel(head.var_store().trainable_variables().iter()));

    // Head-only runs never change the backbone's output: encode each split once.
    let cache = ctx.frozen.then(|| (ctx.features(&train), ctx.features(&dev), ctx.features(&test)));

    let per_epoch = train.len().div_ceil(training.batch_size);
    let mut total = (training.epochs * per_epoch).max(training.min_steps);
    if training.max_steps > 0 {
        total = total.min(training.max_steps);
    }
    let warmup = (training.warmup_ratio * total as f64).round() as usize;
    let head_scale = training.head_lr.map_or(1.0, |h| h / spec.lr);
    let mut opt = AdamW::new(&all_params, training.weight_decay)
        .scale_group("head.", head_scale)
        .method_rates(method.as_ref(), spec.lr);
    let lengths = train.lengths();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    bar.set_length(total as u64);
    bar.set_position(0);

    let mut selection = Selection::default();
    let mut step = 0;
    let mut examples_seen = 0usize;
    let mut train_seconds = 0.0;
    let mut diverged = None;
    let maybe_eval = |step: usize, selection: &mut Selection| {
        selection.observe(step, mean(&ctx.evaluate(&dev, cache.as_ref().map(|c| &c.1))), &all_params);
    };
    'outer: while step < total {
        for batch in bucketed_batches(&lengths, training.batch_size, &mut rng) {
            let started = std::time::Instant::now();
            let gold: Vec<Label> = batch.iter().map(|&i| train.gold[i]).collect();
            let labels = label_tensor(&gold, device);
            let logits = match &cache {
                Some((features, _, _)) => {
                    let idx =
                        Tensor::from_slice(&batch.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device);
                    head.forward_pooled(&features.index_select(0, &idx), true)
                }
                None => head.forward(&backbone.forward(&train.batch(&batch, device), method.as_ref(), true), true),
            };
            let loss = loss_of(&logits, &labels, &ds.labels);
            let lr = schedule(spec.lr, step, warmup, total);
            match opt.train_step(&loss, method.as_ref(), training.max_grad_norm, lr) {
                Ok(value) => selection.add_loss(value),
                Err(value) => {
                    diverged = Some(format!("loss became {value} at step {step}"));
                    break 'outer;
                }
            }
            step += 1;
            examples_seen += batch.len();
            train_seconds += started.elapsed().as_secs_f64();
            bar.set_position(step as u64);
            let eval_now = match training.eval_every {
                EvalEvery::Steps(n) => step % n == 0,
                EvalEvery::Epoch => false,
            };
            if eval_now || step == total {
                maybe_eval(step, &mut selection);
            }
            if step == total {
                break 'outer;
            }
        }
        if training.eval_every == EvalEvery::Epoch {
            maybe_eval(step, &mut selection);
        }
    }

    let names: &[String] = sources.filter(|_| spec.transfer).map_or(&[], |(s, _)| &s.transfer.sources);
    let mut diagnostics: BTreeMap<String, f64> = method
        .diagnostics()
        .into_iter()
        .map(|(k, v)| {
            // Methods number their source tasks; the record names them.
            let named = k
                .strip_prefix("attn_source_")
                .and_then(|j| j.parse::<usize>().ok())
                .and_then(|j| names.get(j))
                .map_or(k.clone(), |name| format!("attn_{name}"));
            (named, v)
        })
        .collect();
    diagnostics.extend(source_diagnostics);
    let sizes = (train.len(), dev.len(), test.len());
    let train_eps = examples_seen as f64 / train_seconds.max(1e-9);
    if diverged.is_some() {
        return Ok(Outcome {
            diverged,
            metrics: BTreeMap::new(),
            score: None,
            best_dev: None,
            curve: selection.curve().to_vec(),
            steps: step,
            sizes,
            params: counts,
            train_eps,
            diagnostics,
            samples: Vec::new(),
        });
    }
    let best_dev = selection.restore_best(&all_params).ok_or_else(|| anyhow!("no dev evaluation happened"))?;
    let metrics = ctx.evaluate(&test, cache.as_ref().map(|c| &c.2));
    let score = mean(&metrics);
    Ok(Outcome {
        diverged: None,
        metrics,
        score: Some(score),
        best_dev: Some(best_dev),
        curve: selection.curve().to_vec(),
        steps: step,
        sizes,
        params: counts,
        train_eps,
        diagnostics,
        samples: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelt_backbone::{Bert, BertConfig};

    #[test]
    fn selection_keeps_the_curve_and_restores_the_first_best_checkpoint() {
        let w = Tensor::from_slice(&[0.0f32, 0.0]);
        let params = vec![("w".to_owned(), w.shallow_clone())];
        let set = |v: [f32; 2]| tch::no_grad(|| w.shallow_clone().copy_(&Tensor::from_slice(&v)));
        let mut selection = Selection::default();
        assert_eq!(selection.restore_best(&params), None, "nothing evaluated yet");
        for (loss, dev, value) in [(2.0, 60.0, [1.0, 2.0]), (1.0, 75.0, [3.0, 4.0]), (0.5, 75.0, [5.0, 6.0])] {
            set(value);
            selection.add_loss(loss);
            selection.add_loss(loss + 1.0);
            selection.observe(selection.curve().len() * 10 + 10, dev, &params);
        }
        let points: Vec<(usize, f64, f64)> = selection.curve().iter().map(|p| (p.step, p.dev, p.train_loss)).collect();
        assert_eq!(points, [(10, 60.0, 2.5), (20, 75.0, 1.5), (30, 75.0, 1.0)], "each loss mean covers its window");
        // A tie does not move the selection: the earlier checkpoint stays.
        assert_eq!(selection.restore_best(&params), Some((75.0, 20)));
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), [3.0, 4.0]);
    }

    #[test]
    fn regression_heads_start_at_the_mean_training_score_and_classifiers_at_zero() {
        let bert = Bert::random(&BertConfig::tiny(), 1, Device::Cpu);
        let pooled = Tensor::zeros([4, bert.dims().hidden], (Kind::Float, Device::Cpu));
        let start = |space: &LabelSpace, gold: &[Label]| {
            let out = task_head(&bert, space, gold, Device::Cpu).forward_pooled(&pooled, false);
            Vec::<f32>::try_from(out.flatten(0, -1)).unwrap()
        };
        let scores = [Label::Score(1.0), Label::Score(4.0), Label::Score(2.5)];
        assert_eq!(start(&LabelSpace::Regression, &scores), vec![2.5; 4]);
        let classes = LabelSpace::Classes(vec!["no".into(), "yes".into()]);
        assert_eq!(start(&classes, &[Label::Class(1), Label::Class(1)]), vec![0.0; 8]);
    }
}

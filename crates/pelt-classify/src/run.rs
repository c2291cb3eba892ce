//! One classification run: sample the data, build the method and head, train in the shared loop
//! (cross-entropy, or squared error for regression), select the best dev checkpoint, evaluate on test.

use crate::{
    data::{Source, SplitName, TaskData},
    transfer::{train_sources, Sources},
};
use anyhow::{anyhow, Context, Result};
use indicatif::ProgressBar;
use pelt_backbone::{ClassificationHead, Pooling};
use pelt_core::{for_evaluation, params, Backbone, Inputs, Method, Registry};
use pelt_data::{sampler, Label, LabelSpace};
use pelt_records::DataSize;
use pelt_train::{
    batch::{bucketed_batches, capped, eval_batches, EVAL_TOKENS},
    fit, mean, total_steps, AdamW, Checkpoint, EvalClock, MethodSpec, Outcome, Plan, Selection, Steps, Training,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// One labelled example set: indices into a split plus their gold labels.
pub(crate) struct Subset<'a> {
    pub(crate) source: Source<'a>,
    pub(crate) idx: Vec<usize>,
    pub(crate) gold: Vec<Label>,
}

impl Subset<'_> {
    pub(crate) fn len(&self) -> usize {
        self.idx.len()
    }

    /// Inputs for the subset's members at positions `rows`.
    pub(crate) fn batch(&self, rows: &[usize], device: Device) -> Inputs {
        self.source.batch(&rows.iter().map(|&r| self.idx[r]).collect::<Vec<_>>(), device)
    }

    pub(crate) fn lengths(&self) -> Vec<usize> {
        self.idx.iter().map(|&i| self.source.length(i)).collect()
    }
}

pub(crate) fn subset<'a>(source: Source<'a>, examples: &[pelt_data::Example], idx: &[usize]) -> Subset<'a> {
    Subset { source, idx: idx.to_vec(), gold: idx.iter().map(|&i| examples[i].label).collect() }
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

/// The training loss of a head's outputs: cross-entropy over classes, squared error for regression.
pub fn loss_of(logits: &Tensor, labels: &Tensor, space: &LabelSpace) -> Tensor {
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
pub(crate) struct Ctx<'a> {
    pub(crate) backbone: &'a dyn Backbone,
    pub(crate) method: &'a dyn Method,
    pub(crate) head: &'a ClassificationHead,
    pub(crate) task: &'a TaskData,
    pub(crate) training: &'a Training,
    pub(crate) device: Device,
    /// Pooled features of frozen-backbone runs (head only), keyed by split; `None` when the backbone
    /// path has trainable parameters and must run every step.
    pub(crate) frozen: bool,
    /// Time spent evaluating, for the record's evaluation rate.
    pub(crate) clock: EvalClock,
}

impl Ctx<'_> {
    /// Pooled features of a subset in eval mode (for the frozen fast path), in subset order.
    fn features(&self, set: &Subset) -> Tensor {
        let mut parts: Vec<Tensor> = (0..set.len()).map(|_| Tensor::new()).collect();
        self.clock.measure(set.len(), || {
            tch::no_grad(|| {
                for chunk in self.eval_batches(set) {
                    let out = self.backbone.forward(&set.batch(&chunk, self.device), self.method, false);
                    let pooled = self.head.pool(&out);
                    for (row, &i) in chunk.iter().enumerate() {
                        parts[i] = pooled.get(row as i64);
                    }
                }
            })
        });
        Tensor::stack(&parts, 0)
    }

    /// Metrics (0–100) of the current weights on a subset.
    pub(crate) fn evaluate(&self, set: &Subset, cached: Option<&Tensor>) -> BTreeMap<String, f64> {
        let space = &self.task.dataset.labels;
        let mut pred = vec![0.0; set.len()];
        self.clock.measure(set.len(), || {
            tch::no_grad(|| match cached {
                Some(features) => {
                    let logits = self.head.forward_pooled(features, false);
                    pred = predictions(&logits, space);
                }
                None => {
                    // A reparameterised method (LoRA and kin) is merged into the weights for the pass,
                    // and the weights are restored exactly when `merged` drops.
                    let (_merged, method) = for_evaluation(self.backbone, self.method);
                    for chunk in self.eval_batches(set) {
                        let out = self.backbone.forward(&set.batch(&chunk, self.device), method, false);
                        for (&i, p) in chunk.iter().zip(predictions(&self.head.forward(&out, false), space)) {
                            pred[i] = p;
                        }
                    }
                }
            })
        });
        let gold: Vec<f64> = set.gold.iter().map(|l| l.value()).collect();
        self.task.dataset.metrics.iter().map(|m| (m.name().to_owned(), 100.0 * m.compute(&pred, &gold))).collect()
    }

    /// A subset's evaluation batches: by length, each up to `eval_batch_size` examples and
    /// [`EVAL_TOKENS`] padded tokens.
    fn eval_batches(&self, set: &Subset) -> Vec<Vec<usize>> {
        eval_batches(&set.lengths(), self.training.eval_batch_size, EVAL_TOKENS)
    }
}

/// The classification head for a backbone: mean pooling over tokens for text encoders (how
/// all-MiniLM-L6-v2 was trained to embed), the class token for a ViT (as ViT classifiers are trained).
pub(crate) fn head_for(backbone: &dyn Backbone, outputs: i64, device: Device) -> ClassificationHead {
    let pooling = if backbone.dims().image.is_some() { Pooling::Cls } else { Pooling::Mean };
    ClassificationHead::new(backbone.dims().hidden, outputs, pooling, 0.1, device)
}

/// The head for a task trained on `gold`: a regression head starts its output at the mean training
/// score (see [`ClassificationHead::start_at`]); classifiers keep HF's zero bias.
pub(crate) fn task_head(
    backbone: &dyn Backbone,
    space: &LabelSpace,
    gold: &[Label],
    device: Device,
) -> ClassificationHead {
    let head = head_for(backbone, space.outputs(), device);
    if *space == LabelSpace::Regression && !gold.is_empty() {
        head.start_at(gold.iter().map(|l| l.value()).sum::<f64>() / gold.len() as f64);
    }
    head
}

/// Named tensors, sorted by name.
pub(crate) type Named = Vec<(String, Tensor)>;

/// What a run optimises (and a federated run exchanges), each list sorted by name: the method's
/// trainable set (the backbone variables it unfreezes, `backbone.`, and its own, `method.`; empty for a
/// head-only run), and that set with the head's variables (`head.`).
pub(crate) fn optimised(backbone: &dyn Backbone, method: &dyn Method, head: &ClassificationHead) -> (Named, Named) {
    let trainable = params::prepare_training(backbone, method);
    let mut all: Vec<(String, Tensor)> = trainable.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    all.extend(head.var_store().variables().into_iter().map(|(n, t)| (format!("head.{n}"), t)));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    (trainable, all)
}

/// The classification hooks of the shared loop: length-bucketed batches of the training subset, the
/// head's loss on them (on cached features for head-only runs), the mean dev metric.
struct Loop<'a> {
    ctx: &'a Ctx<'a>,
    train: &'a Subset<'a>,
    dev: &'a Subset<'a>,
    lengths: Vec<usize>,
    cache: Option<&'a (Tensor, Tensor, Tensor)>,
}

impl Steps for Loop<'_> {
    type Batch = Vec<usize>;

    fn epoch(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        bucketed_batches(&self.lengths, self.ctx.training.batch_size, rng)
    }

    fn loss(&self, batch: &Vec<usize>) -> (Tensor, usize) {
        let Ctx { backbone, method, head, device, .. } = *self.ctx;
        let gold: Vec<Label> = batch.iter().map(|&i| self.train.gold[i]).collect();
        let labels = label_tensor(&gold, device);
        let logits = match self.cache {
            Some((features, _, _)) => {
                let idx = Tensor::from_slice(&batch.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device);
                head.forward_pooled(&features.index_select(0, &idx), true)
            }
            None => head.forward(&backbone.forward(&self.train.batch(batch, device), method, true), true),
        };
        (loss_of(&logits, &labels, &self.ctx.task.dataset.labels), batch.len())
    }

    fn dev_score(&self) -> Result<f64> {
        Ok(mean(&self.ctx.evaluate(self.dev, self.cache.map(|c| &c.1))))
    }
}

/// The run's training, dev and test subsets of `task` at `size` and `seed`: the low-resource split (or
/// k-shot), the fixed dev set where the task has one and the size is K examples, otherwise dev drawn
/// from the rest of train; dev and test capped by the training settings.
pub(crate) fn run_data<'a>(
    task: &'a TaskData,
    size: DataSize,
    seed: u64,
    training: &Training,
    image: Option<pelt_core::ImageDims>,
) -> Result<(Subset<'a>, Subset<'a>, Subset<'a>)> {
    let ds = &task.dataset;
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
    let source =
        |split| task.source(split, image, training.pad_to()).ok_or_else(|| anyhow!("{}: no {split:?} split", ds.name));
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
    Ok((train, dev, test))
}

/// Test examples in a checkpoint's check batch.
pub const CHECK_EXAMPLES: usize = 32;

/// The run's parameters as they are now (the best dev step's, once selection restored them), with a
/// check batch: the first [`CHECK_EXAMPLES`] test examples and the logits the run computes for them,
/// the method attached as in training (not merged).
fn checkpoint(ctx: &Ctx, params: &[(String, Tensor)], test: &Subset) -> Checkpoint {
    let cpu = |t: &Tensor| t.detach().to_device(Device::Cpu).contiguous();
    let mut tensors: Vec<(String, Tensor)> = params
        .iter()
        .filter(|(n, _)| n.starts_with("backbone.") || n.starts_with("head."))
        .map(|(n, t)| (n.clone(), cpu(t)))
        .collect();
    // Every variable of the method, trained or not (frozen random projections belong to it too).
    tensors.extend(ctx.method.var_store().variables().into_iter().map(|(n, t)| (format!("method.{n}"), cpu(&t))));
    let rows: Vec<usize> = (0..test.len().min(CHECK_EXAMPLES)).collect();
    if !rows.is_empty() && ctx.backbone.dims().image.is_none() {
        let inputs = test.batch(&rows, ctx.device);
        let logits = tch::no_grad(|| ctx.head.forward(&ctx.backbone.forward(&inputs, ctx.method, false), false));
        tensors.extend([
            ("check.input_ids".to_owned(), cpu(&inputs.input_ids)),
            ("check.attention_mask".to_owned(), cpu(&inputs.attention_mask)),
            ("check.token_type_ids".to_owned(), cpu(&inputs.token_type_ids)),
            ("check.logits".to_owned(), cpu(&logits)),
        ]);
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let labels = match &ctx.task.dataset.labels {
        LabelSpace::Classes(names) => serde_json::json!(names),
        LabelSpace::Regression => serde_json::json!("regression"),
    };
    let meta = serde_json::json!({
        "task": ctx.task.dataset.name,
        "labels": labels,
        "head": {"pooling": ctx.head.pooling(), "outputs": ctx.task.dataset.labels.outputs()},
        "dims": ctx.backbone.dims(),
    });
    Checkpoint { tensors, meta }
}

/// Trains and evaluates one (method, task, size, seed); `keep`: hand back the best dev step's
/// parameters ([`Outcome::checkpoint`]). The backbone must hold its pretrained weights on entry;
/// selective methods change them, and the caller restores them afterwards.
#[allow(clippy::too_many_arguments)]
pub fn run(
    registry: &Registry,
    backbone: &dyn Backbone,
    spec: &MethodSpec,
    task: &TaskData,
    size: DataSize,
    seed: u64,
    keep: bool,
    training: &Training,
    sources: Option<(&Sources, &str)>,
    device: Device,
    bar: &ProgressBar,
) -> Result<Outcome> {
    let ds = &task.dataset;
    let (train, dev, test) = run_data(task, size, seed, training, backbone.dims().image)?;

    // Method and head, seeded.
    let mut method = pelt_train::seeded_method(registry, spec, backbone, seed, device)?;
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
                    eval_eps: None,
                    diagnostics: BTreeMap::new(),
                    samples: Vec::new(),
                    checkpoint: None,
                });
            }
        }
        // The target's fresh parameters are drawn from a generator state that does not depend on
        // whether source training ran now or was loaded from an earlier run.
        pelt_core::manual_seed(seed as i64 ^ 0x7a);
        method.begin_target()?;
    }
    let head = task_head(backbone, &ds.labels, &train.gold, device);
    let (trainable, all_params) = optimised(backbone, method.as_ref(), &head);
    let ctx = Ctx {
        backbone,
        method: method.as_ref(),
        head: &head,
        task,
        training,
        device,
        frozen: trainable.is_empty(),
        clock: EvalClock::default(),
    };

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
    // Evaluations outside the loop run at the training's precision, as the loop's dev evaluations do.
    let amp = |f: &mut dyn FnMut()| pelt_train::autocast(training.precision, device, f);
    let mut cache = None;
    if ctx.frozen {
        amp(&mut || cache = Some((ctx.features(&train), ctx.features(&dev), ctx.features(&test))));
    }

    let total = total_steps(training, train.len().div_ceil(training.batch_size));
    let head_scale = training.head_lr.map_or(1.0, |h| h / spec.lr);
    let mut opt = AdamW::new(&all_params, training.weight_decay)
        .scale_group("head.", head_scale)
        .method_rates(method.as_ref(), spec.lr);
    let hooks = Loop { ctx: &ctx, train: &train, dev: &dev, lengths: train.lengths(), cache: cache.as_ref() };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut selection = Selection::default();
    let plan = Plan { opt: &mut opt, method: method.as_ref(), params: &all_params, lr: spec.lr, total, training };
    let fitted = fit(&hooks, plan, &mut rng, &mut selection, bar)?;
    let train_eps = fitted.examples_per_second();
    let (step, diverged) = (fitted.steps, fitted.diverged);

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
    // A diverged run keeps its curve up to the last evaluation and is not tested.
    let (metrics, best_dev, checkpoint) = match diverged {
        Some(_) => (BTreeMap::new(), None, None),
        None => {
            let best = selection.restore_best(&all_params).ok_or_else(|| anyhow!("no dev evaluation happened"))?;
            let (mut metrics, mut kept) = (BTreeMap::new(), None);
            amp(&mut || {
                metrics = ctx.evaluate(&test, cache.as_ref().map(|c| &c.2));
                kept = keep.then(|| checkpoint(&ctx, &all_params, &test));
            });
            (metrics, Some(best), kept)
        }
    };
    Ok(Outcome {
        score: diverged.is_none().then(|| mean(&metrics)),
        diverged,
        metrics,
        best_dev,
        curve: selection.curve().to_vec(),
        steps: step,
        sizes: (train.len(), dev.len(), test.len()),
        params: counts,
        train_eps,
        eval_eps: ctx.clock.examples_per_second(),
        diagnostics,
        samples: Vec::new(),
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelt_backbone::{Bert, BertConfig};

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

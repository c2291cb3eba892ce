//! One NER run: the method on the encoder, a tag head on every token — linear (HF's
//! `BertForTokenClassification`: dropout 0.1, weights N(0, 0.02), zero bias), or for a method that asks
//! for it (LightNER) the label-word verbalizer — cross-entropy at each word's first piece; dev entity F1
//! selects the checkpoint; the test's entity F1 (seqeval's) is the score.
//!
//! The verbalizer (LightNER §3.2, its "unified learnable verbalizer" in the released code's
//! `learn_weights` form): an entity type's vector is a softmax-weighted mean of the frozen word
//! embeddings of its name's pieces (weights learnable, drawn from U(1, 2.5) as the code draws them), so a
//! new label set needs no new classifier, only names. LightNER generates spans with BART's decoder and
//! needs no BIO tags; a tagger does, so pelt adds three learnable vectors, zero-initialised `B` and `I`
//! markers added to a type's vector and an `O` vector started at the embedding of "other", and scores a
//! token's state against each tag's vector (dropout 0.3 on the vectors, as the code applies it).

use crate::data::{NerTask, Tagged};
use anyhow::{anyhow, bail, Result};
use indicatif::ProgressBar;
use pelt_core::{for_evaluation, params, Backbone, Dropout, Inputs, Method, Registry};
use pelt_data::{conll, tokenize::pad};
use pelt_records::DataSize;
use pelt_train::{
    batch::{bucketed_batches, eval_batches, EVAL_TOKENS},
    fit, total_steps, AdamW, EvalClock, MethodSpec, Outcome, Plan, Priming, Selection, Steps, Training,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::Digest;
use std::collections::BTreeMap;
use tch::{nn, Device, Tensor};

/// The tag head: a linear map from a token's state to the tags' logits, or the label-word verbalizer.
struct Head {
    vs: nn::VarStore,
    kind: HeadKind,
}

enum HeadKind {
    Linear {
        weight: Tensor,
        bias: Tensor,
    },
    Words {
        /// Per type: its name's frozen piece embeddings (pieces × d) and their learnable weights.
        types: Vec<(Tensor, Tensor)>,
        begin: Tensor,
        inside: Tensor,
        other: Tensor,
    },
}

impl Head {
    fn linear(hidden: i64, tags: i64, device: Device) -> Head {
        let vs = nn::VarStore::new(device);
        let root = vs.root() / "classifier";
        let weight = root.var("weight", &[tags, hidden], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
        let bias = root.var("bias", &[tags], nn::Init::Const(0.0));
        Head { vs, kind: HeadKind::Linear { weight, bias } }
    }

    /// The verbalizer for `task`'s types from the backbone's word embeddings (random N(0, 0.02) vectors
    /// where the backbone keeps its word embeddings at another width than its states).
    fn words(backbone: &dyn Backbone, task: &NerTask, device: Device) -> Head {
        let vs = nn::VarStore::new(device);
        let root = vs.root() / "verbalizer";
        let d = backbone.dims().hidden;
        let vars = backbone.var_store().variables();
        let table = vars.get("embeddings.word_embeddings.weight").filter(|w| w.size()[1] == d).map(|w| w.detach());
        let pieces = |ids: &[i64]| -> Tensor {
            match &table {
                Some(t) => t.index_select(0, &Tensor::from_slice(ids).to_device(t.device())).copy().to_device(device),
                None => Tensor::randn([ids.len() as i64, d], (tch::Kind::Float, device)) * 0.02,
            }
        };
        let types = task
            .label_pieces
            .iter()
            .enumerate()
            .map(|(i, ids)| {
                let ids = if ids.is_empty() { vec![task.pad_id] } else { ids.clone() };
                let w =
                    root.var(&format!("type_{i}_weights"), &[ids.len() as i64], nn::Init::Uniform { lo: 1.0, up: 2.5 });
                (pieces(&ids), w)
            })
            .collect();
        let other_ids = if task.other_pieces.is_empty() { vec![task.pad_id] } else { task.other_pieces.clone() };
        let other = root.var_copy("other", &pieces(&other_ids).mean_dim(&[0i64][..], false, tch::Kind::Float));
        let begin = root.var("begin", &[d], nn::Init::Const(0.0));
        let inside = root.var("inside", &[d], nn::Init::Const(0.0));
        Head { vs, kind: HeadKind::Words { types, begin, inside, other } }
    }

    /// The variables a label-word head carries from a source task to a target (the B, I and O vectors;
    /// the type vectors come from the target's own names): none for a linear head, whose tags differ.
    fn carried(&self) -> Vec<(String, Tensor)> {
        match &self.kind {
            HeadKind::Linear { .. } => Vec::new(),
            HeadKind::Words { begin, inside, other, .. } => vec![
                ("begin".into(), begin.shallow_clone()),
                ("inside".into(), inside.shallow_clone()),
                ("other".into(), other.shallow_clone()),
            ],
        }
    }

    fn forward(&self, hidden: &Tensor, train: bool) -> Tensor {
        match &self.kind {
            HeadKind::Linear { weight, bias } => hidden.drop_out(0.1, train).linear(weight, Some(bias)),
            HeadKind::Words { types, begin, inside, other } => {
                // Tag order: O, then B- and I- of each type.
                let mut rows = vec![other.shallow_clone()];
                for (pieces, w) in types {
                    let v = w.softmax(0, tch::Kind::Float).matmul(pieces);
                    rows.push(&v + begin);
                    rows.push(&v + inside);
                }
                let table = Tensor::stack(&rows, 0).drop_out(0.3, train);
                hidden.matmul(&table.tr())
            }
        }
    }
}

/// A split's sentences, as positions into a list of tagged sentences.
struct Set<'a> {
    items: Vec<&'a Tagged>,
}

impl Set<'_> {
    fn lengths(&self) -> Vec<usize> {
        self.items.iter().map(|t| t.encoding.ids.len()).collect()
    }

    /// Inputs and labels (−100 at pieces that are not a word's first, and at padding) of `rows`.
    fn batch(&self, rows: &[usize], pad_id: i64, device: Device) -> (Inputs, Tensor) {
        let encs: Vec<&pelt_data::tokenize::Encoding> = rows.iter().map(|&i| &self.items[i].encoding).collect();
        let p = pad(&encs, pad_id);
        let mut labels = vec![-100i64; p.rows * p.len];
        for (r, &i) in rows.iter().enumerate() {
            let l = &self.items[i].labels;
            labels[r * p.len..r * p.len + l.len()].copy_from_slice(l);
        }
        let shape = [p.rows as i64, p.len as i64];
        let t = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
        (Inputs::text(t(&p.ids), t(&p.mask), t(&p.type_ids)), t(&labels))
    }
}

struct Ctx<'a> {
    backbone: &'a dyn Backbone,
    method: &'a dyn Method,
    head: &'a Head,
    task: &'a NerTask,
    training: &'a Training,
    device: Device,
    clock: EvalClock,
}

impl Ctx<'_> {
    /// Predicted tags of every sentence of `set` (a word cut by truncation is predicted `O`).
    fn predict(&self, set: &Set) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> =
            set.items.iter().map(|t| vec!["O".to_owned(); t.sentence.tokens.len()]).collect();
        self.clock.measure(set.items.len(), || {
            tch::no_grad(|| {
                let (_merged, method) = for_evaluation(self.backbone, self.method);
                for chunk in eval_batches(&set.lengths(), self.training.eval_batch_size, EVAL_TOKENS) {
                    let (inputs, _) = set.batch(&chunk, self.task.pad_id, self.device);
                    let logits = self.head.forward(&self.backbone.forward(&inputs, method, false).hidden, false);
                    let best = logits.argmax(-1, false).to_device(Device::Cpu);
                    let best: Vec<Vec<i64>> = Vec::<Vec<i64>>::try_from(&best).unwrap_or_default();
                    for (row, &i) in chunk.iter().enumerate() {
                        for (w, &pos) in set.items[i].firsts.iter().enumerate() {
                            out[i][w] = self.task.tags[best[row][pos] as usize].clone();
                        }
                    }
                }
            })
        });
        out
    }

    /// Entity-level precision, recall and F1 (×100) on `set`.
    fn evaluate(&self, set: &Set) -> conll::Prf {
        let predicted = self.predict(set);
        let gold: Vec<Vec<String>> = set.items.iter().map(|t| t.sentence.tags.clone()).collect();
        conll::score(&gold, &predicted).0
    }
}

struct Loop<'a> {
    ctx: &'a Ctx<'a>,
    train: Set<'a>,
    dev: Set<'a>,
    lengths: Vec<usize>,
}

impl Steps for Loop<'_> {
    type Batch = Vec<usize>;

    fn epoch(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        bucketed_batches(&self.lengths, self.ctx.training.batch_size, rng)
    }

    fn loss(&self, batch: &Vec<usize>) -> (Tensor, usize) {
        let c = self.ctx;
        let (inputs, labels) = self.train.batch(batch, c.task.pad_id, c.device);
        let logits = c.head.forward(&c.backbone.forward(&inputs, c.method, true).hidden, true);
        let n = c.task.tags.len() as i64;
        let loss = logits.view([-1, n]).cross_entropy_loss::<Tensor>(
            &labels.view([-1]),
            None,
            tch::Reduction::Mean,
            -100,
            0.0,
        );
        (loss, batch.len())
    }

    fn dev_score(&self) -> Result<f64> {
        Ok(100.0 * self.ctx.evaluate(&self.dev).f1)
    }
}

/// The priming stage of a NER experiment: its source task, its steps, and where primed weights are kept.
pub struct Primer<'a> {
    /// The source task, prepared.
    pub source: &'a NerTask,
    /// Optimizer steps on the source.
    pub steps: usize,
    /// Full fine-tuning's rate when the PLM is primed.
    pub plm_lr: f64,
    /// Folder of primed weights, per (what is primed, seed, settings).
    pub cache: std::path::PathBuf,
    /// A digest of the priming settings and the source's data, in every cached file's name.
    pub digest: String,
}

/// Named tensors.
type Named = Vec<(String, Tensor)>;

/// The model's parts in one stage: method, head and what trains.
struct Parts {
    method: Box<dyn Method>,
    head: Head,
    all: Vec<(String, Tensor)>,
}

fn parts(method: Box<dyn Method>, head: Head, backbone: &dyn Backbone) -> Parts {
    let trainable = params::prepare_training(backbone, method.as_ref());
    let mut all: Vec<(String, Tensor)> = trainable.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    all.extend(head.vs.variables().into_iter().map(|(n, t)| (format!("head.{n}"), t)));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    Parts { method, head, all }
}

fn head_for(method: &dyn Method, backbone: &dyn Backbone, task: &NerTask, device: Device) -> Head {
    if method.label_words() {
        Head::words(backbone, task, device)
    } else {
        Head::linear(backbone.dims().hidden, task.tags.len() as i64, device)
    }
}

/// One training stage on `task` (train and dev as positions or the task's own dev): `fit` for the
/// training's steps at rate `lr`; returns how it ended and its selection.
#[allow(clippy::too_many_arguments)]
fn stage(
    backbone: &dyn Backbone,
    p: &Parts,
    task: &NerTask,
    train: Set,
    dev: Set,
    lr: f64,
    training: &Training,
    seed: u64,
    device: Device,
    bar: &ProgressBar,
) -> Result<(pelt_train::Fit, Selection, EvalClock)> {
    let ctx =
        Ctx { backbone, method: p.method.as_ref(), head: &p.head, task, training, device, clock: EvalClock::default() };
    let total = total_steps(training, train.items.len().div_ceil(training.batch_size));
    let head_scale = training.head_lr.map_or(1.0, |h| h / lr);
    let mut opt =
        AdamW::new(&p.all, training.weight_decay).scale_group("head.", head_scale).method_rates(p.method.as_ref(), lr);
    let lengths = train.lengths();
    let hooks = Loop { ctx: &ctx, train, dev, lengths };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut selection = Selection::default();
    let plan = Plan { opt: &mut opt, method: p.method.as_ref(), params: &p.all, lr, total, training };
    let fitted = fit(&hooks, plan, &mut rng, &mut selection, bar)?;
    Ok((fitted, selection, ctx.clock))
}

/// Training settings of a source stage: `steps` optimizer steps, one dev evaluation at the end.
fn source_training(training: &Training, steps: usize) -> Training {
    Training {
        epochs: steps,
        min_steps: steps,
        max_steps: steps,
        eval_every: pelt_train::EvalEvery::Steps(steps.max(1)),
        ..training.clone()
    }
}

/// A run's training and dev sentences of `task` at `size` (see [`NerTask::split`]).
fn sets<'a>(task: &'a NerTask, size: DataSize, seed: u64, training: &Training) -> Result<(Set<'a>, Set<'a>)> {
    let (train, dev) = task.split(size, seed, training.dev_limit)?;
    let train = Set { items: train.iter().map(|&i| &task.pool[i]).collect() };
    let dev = match (&task.dev, dev) {
        (Some(d), _) => Set { items: d.iter().collect() },
        (None, Some(d)) => Set { items: d.iter().map(|&i| &task.pool[i]).collect() },
        (None, None) => return Err(anyhow!("{}: no dev split", task.name)),
    };
    Ok((train, dev))
}

/// The name under which a cached primed state keeps its source stage's final dev F1.
const SOURCE_DEV: &str = "stage.source_dev_f1";

/// Primes the PLM: full fine-tuning on the source (a linear head), or its weights from the cache;
/// leaves them in the backbone and returns the source stage's final dev F1 (×100) where known.
#[allow(clippy::too_many_arguments)]
fn prime_plm(
    registry: &Registry,
    backbone: &dyn Backbone,
    primer: &Primer,
    seed: u64,
    training: &Training,
    device: Device,
    bar: &ProgressBar,
) -> Result<Option<f64>> {
    let file = primer.cache.join(format!("plm__s{seed}__{}.safetensors", primer.digest));
    let vars = backbone.var_store().variables();
    if file.is_file() {
        let saved: BTreeMap<String, Tensor> = Tensor::read_safetensors(&file)?.into_iter().collect();
        tch::no_grad(|| {
            for (name, mut var) in vars {
                if let Some(v) = saved.get(&name) {
                    var.copy_(v);
                }
            }
        });
        return Ok(saved.get(SOURCE_DEV).map(|t| t.double_value(&[])));
    }
    pelt_core::manual_seed(seed as i64 ^ 0x97);
    let full = (registry.get("full")?.build)(&pelt_core::serde_yaml::Value::Null, backbone.dims(), device)?;
    full.init_from(backbone);
    let head = Head::linear(backbone.dims().hidden, primer.source.tags.len() as i64, device);
    let p = parts(full, head, backbone);
    let (train, dev) = sets(primer.source, DataSize::All, seed, training)?;
    let t = source_training(training, primer.steps);
    let (fitted, selection, _) = stage(backbone, &p, primer.source, train, dev, primer.plm_lr, &t, seed, device, bar)?;
    if let Some(why) = fitted.diverged {
        bail!("priming the PLM on {} diverged: {why}", primer.source.name);
    }
    std::fs::create_dir_all(&primer.cache)?;
    let source_dev = selection.curve().last().map(|c| c.dev);
    let mut tensors: Vec<(String, Tensor)> = vars.into_iter().collect();
    tensors.extend(source_dev.map(|d| (SOURCE_DEV.to_owned(), Tensor::from(d))));
    let tmp = file.with_extension("partial");
    Tensor::write_safetensors(&tensors, &tmp)?;
    std::fs::rename(&tmp, &file)?;
    Ok(source_dev)
}

/// Primes the method on the source with the PLM frozen (or loads it): its values stay in `method`; a
/// label-word head's carried vectors are returned for the target's head, with the source stage's final
/// dev F1 (×100) where known.
#[allow(clippy::too_many_arguments)]
fn prime_method(
    backbone: &dyn Backbone,
    method: Box<dyn Method>,
    spec: &MethodSpec,
    primer: &Primer,
    seed: u64,
    training: &Training,
    device: Device,
    bar: &ProgressBar,
) -> Result<(Box<dyn Method>, Named, Option<f64>)> {
    // The cached state depends on what trained and at which rate, not only on the priming settings.
    let lr = spec.prime_lr.unwrap_or(spec.lr);
    let what = format!("{}|{}|{lr}", spec.method, pelt_core::serde_yaml::to_string(&spec.config).unwrap_or_default());
    let what = &format!("{:x}", sha2::Sha256::digest(what.as_bytes()))[..12];
    let key = format!("method__{}__s{seed}__{}__{what}", pelt_records::file_part(spec.label()), primer.digest);
    let file = primer.cache.join(format!("{key}.safetensors"));
    let head = head_for(method.as_ref(), backbone, primer.source, device);
    let p = parts(method, head, backbone);
    let carried = |p: &Parts| -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> =
            p.method.var_store().variables().into_iter().map(|(n, t)| (format!("method.{n}"), t)).collect();
        out.extend(p.head.carried().into_iter().map(|(n, t)| (format!("head.{n}"), t)));
        out
    };
    let source_dev = if file.is_file() {
        let saved: BTreeMap<String, Tensor> = Tensor::read_safetensors(&file)?.into_iter().collect();
        tch::no_grad(|| {
            for (name, mut var) in carried(&p) {
                let v = saved.get(&name).ok_or_else(|| anyhow!("{}: no `{name}`", file.display()))?;
                var.copy_(v);
            }
            Ok::<(), anyhow::Error>(())
        })?;
        saved.get(SOURCE_DEV).map(|t| t.double_value(&[]))
    } else {
        let (train, dev) = sets(primer.source, DataSize::All, seed, training)?;
        let t = source_training(training, primer.steps);
        let (fitted, selection, _) = stage(backbone, &p, primer.source, train, dev, lr, &t, seed, device, bar)?;
        if let Some(why) = fitted.diverged {
            bail!("priming {} on {} diverged: {why}", spec.label(), primer.source.name);
        }
        std::fs::create_dir_all(&primer.cache)?;
        let source_dev = selection.curve().last().map(|c| c.dev);
        let mut tensors = carried(&p);
        tensors.extend(source_dev.map(|d| (SOURCE_DEV.to_owned(), Tensor::from(d))));
        let tmp = file.with_extension("partial");
        Tensor::write_safetensors(&tensors, &tmp)?;
        std::fs::rename(&tmp, &file)?;
        source_dev
    };
    let head_vars: Vec<(String, Tensor)> = p.head.carried().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
    Ok((p.method, head_vars, source_dev))
}

/// Trains and evaluates one (method, task, size, seed), primed on the source first when the entry says
/// so; the backbone holds its pretrained weights on entry and the caller restores them afterwards.
#[allow(clippy::too_many_arguments)]
pub fn run(
    registry: &Registry,
    backbone: &dyn Backbone,
    spec: &MethodSpec,
    task: &NerTask,
    size: DataSize,
    seed: u64,
    training: &Training,
    primer: Option<&Primer>,
    device: Device,
    bar: &ProgressBar,
) -> Result<Outcome> {
    let (train, dev) = sets(task, size, seed, training)?;
    let test = Set { items: task.test.iter().collect() };
    let primer = match (spec.prime, primer) {
        (Priming::None, _) => None,
        (_, Some(p)) => Some(p),
        (_, None) => bail!("{}: `prime` needs the experiment's `priming` section", spec.label()),
    };
    let mut source_dev = None;
    if let (Priming::Plm, Some(p)) = (spec.prime, primer) {
        source_dev = prime_plm(registry, backbone, p, seed, training, device, bar)?;
    }

    let mut method = pelt_train::seeded_method(registry, spec, backbone, seed, device)?;
    let mut carried = Vec::new();
    if let (Priming::Method, Some(p)) = (spec.prime, primer) {
        (method, carried, source_dev) = prime_method(backbone, method, spec, p, seed, training, device, bar)?;
    }
    let head = head_for(method.as_ref(), backbone, task, device);
    tch::no_grad(|| {
        for ((_, mut to), (_, from)) in head.carried().into_iter().zip(&carried) {
            to.copy_(from);
        }
    });
    let counts = params::count(backbone, method.as_ref(), params::numel(head.vs.trainable_variables().iter()));
    let p = parts(method, head, backbone);
    let (sizes_train, sizes_dev) = (train.items.len(), dev.items.len());
    let (fitted, selection, clock) = stage(backbone, &p, task, train, dev, spec.lr, training, seed, device, bar)?;
    let train_eps = fitted.examples_per_second();
    let ctx = Ctx { backbone, method: p.method.as_ref(), head: &p.head, task, training, device, clock };
    let (metrics, best_dev, diagnostics) = match &fitted.diverged {
        Some(_) => (BTreeMap::new(), None, p.method.diagnostics().into_iter().collect()),
        None => {
            let best = selection.restore_best(&p.all).ok_or_else(|| anyhow!("no dev evaluation happened"))?;
            let prf = ctx.evaluate(&test);
            let mut diagnostics: BTreeMap<String, f64> = p.method.diagnostics().into_iter().collect();
            diagnostics.insert("ner_precision".into(), 100.0 * prf.precision);
            diagnostics.insert("ner_recall".into(), 100.0 * prf.recall);
            diagnostics.insert("ner_test_entities".into(), prf.support as f64);
            // The source stage's own dev F1: a primed run that cannot learn its target may have
            // collapsed on the source already.
            if let Some(d) = source_dev {
                diagnostics.insert("prime_source_dev_f1".into(), d);
            }
            (BTreeMap::from([("f1".to_owned(), 100.0 * prf.f1)]), Some(best), diagnostics)
        }
    };
    Ok(Outcome {
        score: fitted.diverged.is_none().then(|| metrics["f1"]),
        diverged: fitted.diverged,
        metrics,
        best_dev,
        curve: selection.curve().to_vec(),
        steps: fitted.steps,
        sizes: (sizes_train, sizes_dev, test.items.len()),
        params: counts,
        train_eps,
        eval_eps: ctx.clock.examples_per_second(),
        diagnostics,
        samples: Vec::new(),
        checkpoint: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verbalizer scores a token against each tag's vector: at init a type's B- and I- score alike
    /// (their markers start at zero), the type's vector is a mean of its name's frozen piece embeddings,
    /// and its only trained parameters are per-piece weights and three shared vectors (no per-tag matrix).
    #[test]
    fn the_label_word_head_scores_tokens_against_the_types_names() {
        let bert = pelt_backbone::Bert::random(&pelt_backbone::BertConfig::tiny(), 1, Device::Cpu);
        let task = NerTask {
            name: "t".into(),
            tags: ["O", "B-a", "I-a", "B-b", "I-b"].iter().map(|t| t.to_string()).collect(),
            pool: Vec::new(),
            shots: Default::default(),
            dev: None,
            test: Vec::new(),
            pad_id: 0,
            label_pieces: vec![vec![5, 6], vec![7]],
            other_pieces: vec![9],
        };
        let head = Head::words(&bert, &task, Device::Cpu);
        let hidden = Tensor::randn([2, 3, 16], (tch::Kind::Float, Device::Cpu));
        let logits = head.forward(&hidden, false);
        assert_eq!(logits.size(), [2, 3, 5]);
        let col = |i: i64| logits.select(2, i);
        assert!(col(1).allclose(&col(2), 1e-6, 1e-6, false), "B- and I- of a type start equal");
        assert!(!col(1).allclose(&col(3), 1e-3, 1e-3, false), "two types' names score differently");
        // Type b has one piece: its vector is that piece's embedding.
        let table = &bert.var_store().variables()["embeddings.word_embeddings.weight"];
        let want = hidden.matmul(&table.get(7));
        assert!(col(3).allclose(&want, 1e-5, 1e-5, false));
        let trained: i64 = head.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert_eq!(trained, 2 + 1 + 3 * 16, "piece weights and the B, I and O vectors");
    }

    #[test]
    fn batches_label_first_pieces_only_and_pad_with_ignore() {
        let tagged = |ids: Vec<i64>, labels: Vec<i64>| Tagged {
            sentence: pelt_data::conll::Sentence { tokens: vec!["a".into()], tags: vec!["O".into()] },
            encoding: pelt_data::tokenize::Encoding { type_ids: vec![0; ids.len()], ids },
            labels,
            firsts: vec![1],
        };
        let (a, b) =
            (tagged(vec![101, 7, 8, 102], vec![-100, 2, -100, -100]), tagged(vec![101, 9, 102], vec![-100, 0, -100]));
        let set = Set { items: vec![&a, &b] };
        let (inputs, labels) = set.batch(&[0, 1], 0, Device::Cpu);
        assert_eq!(inputs.input_ids.size(), [2, 4]);
        let got: Vec<i64> = Vec::try_from(labels.view([-1])).unwrap();
        assert_eq!(got, [-100, 2, -100, -100, -100, 0, -100, -100]);
    }
}

//! Summarization runs: a method attached to an encoder-decoder (a T5 / mT5, or a BERT2BERT warm-started
//! from the shipped encoder), trained with the teacher-forced seq2seq loss under the same optimiser,
//! schedule and clipping as classification runs; the dev set's ROUGE selects the checkpoint, and the
//! test set's ROUGE-1, ROUGE-2 and ROUGE-L F1 are the result.
//!
//! One run can train one method instance on several tasks at once (XL-Sum languages sharing a method,
//! [`pelt_train::MethodSpec::shared`]): batches come from one task each, in proportion to the
//! tasks' training sizes, the checkpoint is selected on the mean dev score over tasks, and every task
//! gets its own outcome.

use crate::data::{GenerationSpec, SummaryData};
use anyhow::{anyhow, Context, Result};
use indicatif::ProgressBar;
use pelt_backbone::{seq2seq, Generation, Seq2Seq};
use pelt_core::{params, Method, Registry};
use pelt_data::{
    sampler,
    summarization::{corpus_rouge, latin_tokens},
    Encoding, TextTokenizer,
};
use pelt_records::DataSize;
use pelt_train::{
    batch::{bucketed_batches, capped, inputs},
    fit, mean, total_steps, AdamW, EvalClock, MethodSpec, Outcome, Plan, Selection, Steps, Training,
};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use tch::{Device, Tensor};

/// The decoder settings of [`GenerationSpec`] for `seq2seq::generate`.
fn generation(g: &GenerationSpec) -> Generation {
    Generation {
        max_new_tokens: g.max_new_tokens,
        num_beams: g.num_beams,
        length_penalty: g.length_penalty,
        no_repeat_ngram: g.no_repeat_ngram_size,
        incremental: true,
    }
}

/// What stays fixed through a run.
struct Ctx<'a> {
    model: &'a dyn Seq2Seq,
    method: &'a dyn Method,
    tokenizer: &'a TextTokenizer,
    training: &'a Training,
    generation: Generation,
    device: Device,
    /// Time spent generating for evaluation, for the record's evaluation rate.
    clock: EvalClock,
}

impl Ctx<'_> {
    /// Generated summaries of the articles `rows` of `split`, in order.
    fn summaries(&self, split: &[Encoding], rows: &[usize], pad_id: i64) -> Result<Vec<String>> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| split[rows[i]].ids.len());
        let mut out = vec![String::new(); rows.len()];
        let ids = self.model.special_ids();
        // Generation's cost grows with rows × beams × new tokens, not with the articles' lengths, so
        // its batches stay at `eval_batch_size` rows.
        self.clock.measure(rows.len(), || {
            for chunk in order.chunks(self.training.eval_batch_size) {
                let batch: Vec<&Encoding> = chunk.iter().map(|&i| &split[rows[i]]).collect();
                let generated =
                    seq2seq::generate(self.model, &inputs(&batch, pad_id, self.device), self.method, &self.generation);
                for (&i, seq) in chunk.iter().zip(generated) {
                    // The decoder start token leads; the summary ends at the first end token.
                    let body: Vec<i64> =
                        seq.into_iter().skip(1).take_while(|&t| t != ids.eos && t != ids.pad).collect();
                    out[i] = self.tokenizer.decode(&body)?;
                }
            }
            Ok::<(), anyhow::Error>(())
        })?;
        Ok(out)
    }

    /// ROUGE-1/2/L F1 (×100) of generated summaries of `rows` of a split against their references — or,
    /// where `all_refs` gives every reference of each item (data-to-text), BLEU, chrF++ and ROUGE-L
    /// against all of them — and the (generated, first reference) pairs. Where `seen` gives the training
    /// categories (WebNLG's test set), the data-to-text metrics are also computed on the items of seen
    /// and of unseen categories apart (`bleu_seen`, `bleu_unseen`, …), returned beside the main ones.
    fn rouge(
        &self,
        task: &SummaryData,
        split: &[Encoding],
        refs: &[pelt_data::summarization::Article],
        all_refs: Option<&[Vec<String>]>,
        rows: &[usize],
        seen: Option<&BTreeSet<String>>,
    ) -> Result<Scored> {
        let generated = self.summaries(split, rows, task.pad_id)?;
        // Data-to-text: corpus BLEU and chrF++ (sacreBLEU's) and ROUGE-L (each item's best reference)
        // against every reference.
        if let Some(all) = all_refs {
            let item_refs: Vec<Vec<String>> = rows.iter().map(|&i| all[i].clone()).collect();
            let metrics = d2t_metrics(&generated, &item_refs);
            let mut parts = BTreeMap::new();
            if let Some(seen) = seen {
                for (suffix, want) in [("seen", true), ("unseen", false)] {
                    let picked: Vec<usize> =
                        (0..rows.len()).filter(|&j| seen.contains(category(&refs[rows[j]].id)) == want).collect();
                    if picked.is_empty() {
                        continue;
                    }
                    let hyps: Vec<String> = picked.iter().map(|&j| generated[j].clone()).collect();
                    let rs: Vec<Vec<String>> = picked.iter().map(|&j| item_refs[j].clone()).collect();
                    for (name, v) in d2t_metrics(&hyps, &rs) {
                        parts.insert(format!("{name}_{suffix}"), v);
                    }
                }
            }
            let pairs = generated.into_iter().zip(rows).map(|(g, &i)| (g, refs[i].summary.clone())).collect();
            return Ok((metrics, parts, pairs));
        }
        let pairs: Vec<(String, String)> =
            generated.into_iter().zip(rows).map(|(g, &i)| (g, refs[i].summary.clone())).collect();
        let r = if task.latin {
            corpus_rouge(&pairs, latin_tokens)
        } else {
            corpus_rouge(&pairs, |s| self.tokenizer.pieces(s))
        };
        let metrics = BTreeMap::from([
            ("rouge1".to_owned(), 100.0 * r.rouge1),
            ("rouge2".to_owned(), 100.0 * r.rouge2),
            ("rougeL".to_owned(), 100.0 * r.rouge_l),
        ]);
        Ok((metrics, BTreeMap::new(), pairs))
    }
}

/// Data-to-text scores of generated texts against every reference of each item: sacreBLEU's corpus
/// BLEU and chrF++, and ROUGE-L F1 against each item's best reference, all ×100.
fn d2t_metrics(hyps: &[String], item_refs: &[Vec<String>]) -> BTreeMap<String, f64> {
    let rouge_l = hyps
        .iter()
        .zip(item_refs)
        .map(|(h, rs)| {
            let h = latin_tokens(h);
            rs.iter().map(|r| pelt_data::summarization::rouge(&h, &latin_tokens(r)).rouge_l).fold(0.0, f64::max)
        })
        .sum::<f64>()
        / hyps.len().max(1) as f64;
    BTreeMap::from([
        ("bleu".to_owned(), pelt_data::textgen::bleu(hyps, item_refs)),
        ("chrf_pp".to_owned(), pelt_data::textgen::chrf_pp(hyps, item_refs)),
        ("rougeL".to_owned(), 100.0 * rouge_l),
    ])
}

/// A WebNLG item's category, from its id (`category/eid`).
fn category(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// WebNLG: the categories of a task's training items, which its test set's seen / unseen split is
/// made by; `None` for other tasks.
fn seen_categories(task: &SummaryData) -> Option<BTreeSet<String>> {
    (task.splits.name == "webnlg").then(|| task.splits.train.iter().map(|a| category(&a.id).to_owned()).collect())
}

/// (generated, reference) summaries.
type Samples = Vec<(String, String)>;

/// A split's main metrics, its per-part metrics (WebNLG's seen / unseen) and its samples.
type Scored = (BTreeMap<String, f64>, BTreeMap<String, f64>, Samples);

/// Test summaries kept with each record, to read beside the scores.
const SAMPLES: usize = 20;

/// The seq2seq hooks of the shared loop: each epoch every task's articles in length-bucketed batches,
/// the batches of all tasks shuffled together (so tasks come in proportion to their sizes); the
/// teacher-forced loss; the mean dev ROUGE over tasks.
struct Loop<'a> {
    ctx: &'a Ctx<'a>,
    tasks: &'a [&'a SummaryData],
    train_rows: &'a [Vec<usize>],
    dev_rows: &'a [Vec<usize>],
}

impl Loop<'_> {
    /// Encoder inputs and target ids of the training articles `rows` of task `task`.
    fn batch(&self, task: usize, rows: &[usize]) -> (pelt_core::Inputs, Vec<Vec<i64>>) {
        let t = self.tasks[task];
        let enc: Vec<&Encoding> = rows.iter().map(|&i| &t.train[i]).collect();
        let targets: Vec<Vec<i64>> = rows.iter().map(|&i| t.targets[i].clone()).collect();
        (inputs(&enc, t.pad_id, self.ctx.device), targets)
    }
}

impl Steps for Loop<'_> {
    type Batch = (usize, Vec<usize>);

    fn epoch(&self, rng: &mut ChaCha8Rng) -> Vec<(usize, Vec<usize>)> {
        let mut batches = Vec::new();
        for (task, rows) in self.train_rows.iter().enumerate() {
            let lengths: Vec<usize> = rows.iter().map(|&i| self.tasks[task].train[i].ids.len()).collect();
            for b in bucketed_batches(&lengths, self.ctx.training.batch_size, rng) {
                batches.push((task, b.into_iter().map(|j| rows[j]).collect()));
            }
        }
        batches.shuffle(rng);
        batches
    }

    fn loss(&self, (task, rows): &(usize, Vec<usize>)) -> (Tensor, usize) {
        let (x, y) = self.batch(*task, rows);
        (seq2seq::loss(self.ctx.model, &x, &y, self.ctx.method, true), rows.len())
    }

    fn dev_score(&self) -> Result<f64> {
        let mut scores = Vec::new();
        for (t, rows) in self.tasks.iter().zip(self.dev_rows) {
            let all = t.splits.references.as_ref().map(|r| &r.0[..]);
            scores.push(mean(&self.ctx.rouge(t, &t.val, &t.splits.val, all, rows, None)?.0));
        }
        Ok(scores.iter().sum::<f64>() / scores.len() as f64)
    }
}

/// Trains one method instance on `tasks` (one task, or several when the method is shared) at `size`
/// with `seed`, and returns each task's outcome. The model must hold its pretrained weights on entry;
/// its new parts (a warm-started decoder's cross-attention) are drawn afresh from the seed.
#[allow(clippy::too_many_arguments)]
pub fn run(
    registry: &Registry,
    model: &dyn Seq2Seq,
    tokenizer: &TextTokenizer,
    spec: &MethodSpec,
    tasks: &[&SummaryData],
    size: DataSize,
    seed: u64,
    training: &Training,
    g: &GenerationSpec,
    device: Device,
    bar: &ProgressBar,
) -> Result<Vec<Outcome>> {
    // Data: K articles of each task drawn with the seed (the fixed validation split selects), capped
    // dev and test sets.
    let mut train_rows = Vec::new();
    for t in tasks {
        let k = match size {
            DataSize::Examples(k) => Some(k),
            DataSize::All => None,
            DataSize::Shot(_) => return Err(anyhow!("{}: k-shot sampling needs classes", t.splits.name)),
        };
        let split = sampler::low_resource(t.train.len(), k, true, seed)
            .with_context(|| format!("sampling {} articles of {}", size.label(), t.splits.name))?;
        train_rows.push(split.train);
    }
    let dev_rows: Vec<Vec<usize>> = tasks.iter().map(|t| capped(t.val.len(), training.dev_limit)).collect();
    let test_rows: Vec<Vec<usize>> = tasks.iter().map(|t| capped(t.test.len(), training.test_limit)).collect();

    // Method and new parts, seeded.
    let method = pelt_train::seeded_method(registry, spec, model, seed, device)?;
    model.reset_new_parts();
    // PCG: its content planner learns the plans the training references follow; each used input is
    // then written behind its plan — gold for training items, predicted for dev and test items.
    let mut planned = Vec::new();
    if let Some(settings) = method.content_planner() {
        for (i, t) in tasks.iter().enumerate() {
            let rows = [&train_rows[i][..], &dev_rows[i][..], &test_rows[i][..]];
            planned.push(crate::plan::planned(t, model, tokenizer, settings, rows, seed)?);
        }
    }
    let planner_params: i64 = planned.iter().map(|p| p.params).sum();
    let plan_diagnostics: Vec<(String, f64)> = planned.iter().flat_map(|p| p.diagnostics.clone()).collect();
    let tasks: Vec<&SummaryData> =
        if planned.is_empty() { tasks.to_vec() } else { planned.iter().map(|p| &p.data).collect() };
    let tasks = &tasks[..];
    let new_parts: Vec<(String, Tensor)> = model
        .new_parts()
        .map(|vs| vs.variables().into_iter().map(|(n, t)| (format!("new.{n}"), t.set_requires_grad(true))).collect())
        .unwrap_or_default();
    let trainable = params::prepare_training(model, method.as_ref());
    let mut all: Vec<(String, Tensor)> = trainable.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
    all.extend(new_parts.iter().map(|(n, t)| (n.clone(), t.shallow_clone())));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let ctx = Ctx {
        model,
        method: method.as_ref(),
        tokenizer,
        training,
        generation: generation(g),
        device,
        clock: EvalClock::default(),
    };

    let hooks = Loop { ctx: &ctx, tasks, train_rows: &train_rows, dev_rows: &dev_rows };
    // SNIP scores weights by the loss gradient at init: the first task's first articles, dropout off,
    // each batch's mean-loss gradient summed (as in the classification runner).
    pelt_core::run_calibration(method.as_ref(), train_rows[0].len(), training.batch_size, |chunk| {
        let rows: Vec<usize> = chunk.iter().map(|&p| train_rows[0][p]).collect();
        let (x, y) = hooks.batch(0, &rows);
        seq2seq::loss(model, &x, &y, method.as_ref(), false)
    });
    // The content planner trains before the generator, as a head of its own: counted with the head.
    let head = params::numel(new_parts.iter().map(|(_, t)| t)) + planner_params;
    let counts = params::count(model, method.as_ref(), head);

    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let per_epoch: usize = train_rows.iter().map(|r| r.len().div_ceil(training.batch_size)).sum();
    let total = total_steps(training, per_epoch);
    let head_scale = training.head_lr.map_or(1.0, |h| h / spec.lr);
    let mut opt =
        AdamW::new(&all, training.weight_decay).scale_group("new.", head_scale).method_rates(method.as_ref(), spec.lr);
    let mut selection = Selection::default();
    let plan = Plan { opt: &mut opt, method: method.as_ref(), params: &all, lr: spec.lr, total, training };
    let fitted = fit(&hooks, plan, &mut rng, &mut selection, bar)?;
    let train_eps = fitted.examples_per_second();
    let (step, diverged) = (fitted.steps, fitted.diverged);

    let mut diagnostics: BTreeMap<String, f64> = method.diagnostics().into_iter().chain(plan_diagnostics).collect();
    if tasks.len() > 1 {
        diagnostics.insert("shared_tasks".into(), tasks.len() as f64);
    }
    // The score is the mean of the main metrics; a WebNLG run's seen / unseen parts sit beside them.
    let outcome = |i: usize,
                   mut metrics: BTreeMap<String, f64>,
                   parts: BTreeMap<String, f64>,
                   best: Option<(f64, usize)>,
                   samples| {
        let score = (!metrics.is_empty()).then(|| mean(&metrics));
        metrics.extend(parts);
        Outcome {
            diverged: diverged.clone(),
            score,
            metrics,
            best_dev: best,
            curve: selection.curve().to_vec(),
            steps: step,
            sizes: (train_rows[i].len(), dev_rows[i].len(), test_rows[i].len()),
            params: counts,
            train_eps,
            eval_eps: ctx.clock.examples_per_second(),
            diagnostics: diagnostics.clone(),
            samples,
            checkpoint: None,
        }
    };
    if diverged.is_some() {
        return Ok((0..tasks.len()).map(|i| outcome(i, BTreeMap::new(), BTreeMap::new(), None, Vec::new())).collect());
    }
    let best = selection.restore_best(&all).ok_or_else(|| anyhow!("no dev evaluation happened"))?;
    let mut out = Vec::new();
    for (i, (t, rows)) in tasks.iter().zip(&test_rows).enumerate() {
        // At the training's precision, as the loop's dev evaluations.
        let device = all.first().map_or(tch::Device::Cpu, |(_, p)| p.device());
        let seen = seen_categories(t);
        let (metrics, parts, pairs) = pelt_train::autocast(training.precision, device, || {
            let all = t.splits.references.as_ref().map(|r| &r.1[..]);
            ctx.rouge(t, &t.test, &t.splits.test, all, rows, seen.as_ref())
        })?;
        // Each sample with what the encoder read (a long article shortened).
        let samples = pairs
            .into_iter()
            .zip(rows)
            .take(SAMPLES)
            .map(|((generated, reference), &r)| {
                let text = &t.splits.test[r].text;
                let input = match text.char_indices().nth(300) {
                    Some((cut, _)) => format!("{}…", &text[..cut]),
                    None => text.clone(),
                };
                pelt_train::Sample { input, generated, reference }
            })
            .collect();
        out.push(outcome(i, metrics, parts, Some(best), samples));
    }
    // The next run draws its own new parts; leave them trainable-free like the backbone.
    for (_, t) in &new_parts {
        let _ = t.shallow_clone().set_requires_grad(false);
    }
    Ok(out)
}

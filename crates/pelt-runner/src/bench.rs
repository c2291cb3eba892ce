//! `pelt bench`: times pelt's training step on fixed batches and its evaluation passes, the pelt side
//! of the side-by-side comparison with Python transformers + peft (`bench/compare`), and libtorch's
//! fp32 matmul rate.
//!
//! The fixed-length batches are a formula of (row, position) that the Python side reproduces, so both
//! sides see the same token ids without sharing a file; the SST-2 batches are the first examples of
//! the official train split, tokenised with the same tokenizer, padded per batch and bucketed by length
//! as `pelt sweep` trains.

use crate::host;
use anyhow::{bail, Context, Result};
use pelt_backbone::{Bert, ClassificationHead, Pooling};
use pelt_classify::run::loss_of;
use pelt_core::{params, Backbone, Inputs, Registry};
use pelt_data::{glue, tokenize::TextTokenizer, Encoding, LabelSpace};
use pelt_train::{
    batch::{bucketed_batches, eval_batches, inputs, EVAL_TOKENS},
    AdamW,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Where a benchmark's batches come from.
#[derive(Debug, Clone)]
pub enum Batches {
    /// `batch` rows of `len` formula tokens, no padding.
    Fixed {
        /// Rows.
        batch: usize,
        /// Tokens per row.
        len: usize,
    },
    /// The first `batch × steps` SST-2 training sentences, bucketed into batches of `batch`.
    Sst2 {
        /// The GLUE folder.
        glue_dir: std::path::PathBuf,
        /// Rows.
        batch: usize,
    },
}

/// What one benchmark measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `pelt`.
    pub side: &'static str,
    /// Registry name.
    pub method: String,
    /// `fixed` or `sst2`.
    pub batches: String,
    /// Median seconds per step (forward, backward, clipping, AdamW) after warm-up.
    pub median_step_s: f64,
    /// Training examples per second over the timed steps.
    pub examples_per_s: f64,
    /// Median seconds of the step's phases: forward with the loss, backward with the method's
    /// gradient masks, clipping with the AdamW update.
    pub phases_s: [f64; 3],
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Trainable parameters, head included.
    pub trainable: i64,
    /// (rows, padded length) of each timed batch, for the FLOP count.
    pub shapes: Vec<(usize, usize)>,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// The device the steps ran on (`cpu`, `cuda`).
    pub device: String,
    /// The steps' precision (`fp32`, `bf16`, `fp16`).
    pub precision: &'static str,
}

/// Where a training benchmark runs: the device, and the precision of its forward and backward passes.
#[derive(Debug, Clone, Copy)]
pub struct On {
    /// The device.
    pub device: Device,
    /// fp32, or autocast to bf16 / fp16 (fp16 with loss scaling, as `pelt sweep`).
    pub precision: pelt_train::Precision,
}

/// Waits for the device's queued work, so that a clock read after it covers the work.
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The token id at (row, position) of the fixed batches; the Python side computes the same.
pub fn fixed_token(row: usize, pos: usize) -> i64 {
    if pos == 0 {
        return 101; // [CLS]
    }
    1000 + ((row * 7919 + pos * 104_729) % 20_000) as i64
}

fn fixed_batch(batch: usize, len: usize) -> (Inputs, Tensor) {
    let ids: Vec<i64> = (0..batch).flat_map(|r| (0..len).map(move |p| fixed_token(r, p))).collect();
    let input_ids = Tensor::from_slice(&ids).view([batch as i64, len as i64]);
    let labels = Tensor::from_slice(&(0..batch).map(|r| (r % 2) as i64).collect::<Vec<_>>());
    (Inputs::text(input_ids.shallow_clone(), input_ids.ones_like(), input_ids.zeros_like()), labels)
}

/// The benchmarked model at `threads` intra-op threads, seeded: the backbone, a fresh `method` on it and
/// a two-class mean-pooling head.
fn model(
    registry: &Registry,
    model_dir: &Path,
    method: &str,
    config: &serde_yaml::Value,
    threads: i32,
    device: Device,
) -> Result<(Bert, Box<dyn pelt_core::Method>, ClassificationHead)> {
    if threads > 0 {
        tch::set_num_threads(threads);
    }
    pelt_core::manual_seed(0);
    let backbone = Bert::load(model_dir, device)?;
    let m = (registry.get(method)?.build)(config, backbone.dims(), device)?;
    m.init_from(&backbone);
    let head = ClassificationHead::new(backbone.dims().hidden, 2, Pooling::Mean, 0.1, device);
    Ok((backbone, m, head))
}

/// The median of `x` (the upper one of an even count).
fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(|a, b| a.total_cmp(b));
    x[x.len() / 2]
}

/// Times `steps` training steps after `warmup` untimed ones.
#[allow(clippy::too_many_arguments)]
pub fn run(
    registry: &Registry,
    model_dir: &Path,
    method: &str,
    config: &serde_yaml::Value,
    batches: &Batches,
    warmup: usize,
    steps: usize,
    threads: i32,
    on: On,
) -> Result<Report> {
    let device = on.device;
    let (backbone, m, head) = model(registry, model_dir, method, config, threads, device)?;
    let mut scaler = (on.precision == pelt_train::Precision::Fp16).then(pelt_train::GradScaler::default);
    let mut trainable = params::prepare_training(&backbone, m.as_ref());
    trainable.extend(head.var_store().variables().into_iter().map(|(n, t)| (format!("head.{n}"), t)));
    let n_trainable = params::numel(trainable.iter().map(|(_, t)| t));
    let mut opt = AdamW::new(&trainable, 0.01);

    // The batches, built before timing starts.
    let total = warmup + steps;
    let prepared: Vec<(Inputs, Tensor, (usize, usize))> = match batches {
        Batches::Fixed { batch, len } => (0..total)
            .map(|_| {
                let (i, l) = fixed_batch(*batch, *len);
                (i.to_device(device), l.to_device(device), (*batch, *len))
            })
            .collect(),
        Batches::Sst2 { glue_dir, batch } => {
            let ds = glue::load(glue_dir, glue::GlueTask::Sst2)?;
            let n = (batch * total).min(ds.train.len());
            let examples = &ds.train[..n];
            let tok = TextTokenizer::load(&model_dir.join("tokenizer.json"), 128)?;
            let enc: Vec<Encoding> = tok.encode(examples)?;
            let lengths: Vec<usize> = enc.iter().map(|e| e.ids.len()).collect();
            let order = bucketed_batches(&lengths, *batch, &mut ChaCha8Rng::seed_from_u64(0));
            if order.len() < total {
                bail!("SST-2 has too few examples for {total} batches of {batch}");
            }
            order
                .iter()
                .take(total)
                .map(|idx| {
                    let rows: Vec<&Encoding> = idx.iter().map(|&i| &enc[i]).collect();
                    let inputs = inputs(&rows, tok.pad_id, device);
                    let labels =
                        Tensor::from_slice(&idx.iter().map(|&i| examples[i].label.value() as i64).collect::<Vec<_>>())
                            .to_device(device);
                    let shape = (rows.len(), inputs.input_ids.size()[1] as usize);
                    (inputs, labels, shape)
                })
                .collect()
        }
    };

    // Peak memory is the whole process's, loading included, as the Python side's ru_maxrss.
    let mut times = Vec::new();
    let mut shapes = Vec::new();
    let mut phases = Vec::new();
    for (i, (inputs, labels, shape)) in prepared.iter().enumerate() {
        sync(device);
        let started = std::time::Instant::now();
        let loss = pelt_train::autocast(on.precision, device, || {
            let logits = head.forward(&backbone.forward(inputs, m.as_ref(), true), true);
            loss_of(&logits, labels, &LabelSpace::Classes(vec![]))
        });
        if !loss.double_value(&[]).is_finite() {
            bail!("{method}: the loss is not finite at step {i}");
        }
        let forward = started.elapsed().as_secs_f64();
        // As `AdamW::train_step` in `pelt sweep`, with the phases timed: clear, backward, the method's
        // gradient masks, then clipping at 1 and AdamW (fp16: the scaled step).
        opt.zero_grad();
        let scale = scaler.as_ref().map_or(1.0, |s| s.scale());
        if scale == 1.0 {
            loss.backward();
        } else {
            (&loss * scale).backward();
        }
        m.after_backward();
        sync(device);
        let backward = started.elapsed().as_secs_f64();
        match scaler.as_mut() {
            Some(s) => {
                opt.apply_scaled(1.0, 1e-4, s);
            }
            None => {
                opt.apply(1.0, 1e-4);
            }
        }
        sync(device);
        let step = started.elapsed().as_secs_f64();
        if i >= warmup {
            times.push(step);
            phases.push([forward, backward - forward, step - backward]);
            shapes.push(*shape);
        }
    }
    let examples: usize = shapes.iter().map(|s| s.0).sum();
    let total_s: f64 = times.iter().sum();
    let phase = |k: usize| median(phases.iter().map(|p: &[f64; 3]| p[k]).collect());
    Ok(Report {
        phases_s: [phase(0), phase(1), phase(2)],
        side: "pelt",
        method: method.to_owned(),
        batches: match batches {
            Batches::Fixed { .. } => "fixed".into(),
            Batches::Sst2 { .. } => "sst2".into(),
        },
        median_step_s: median(times),
        examples_per_s: examples as f64 / total_s,
        peak_rss_mib: host::peak_rss_mib(),
        trainable: n_trainable,
        shapes,
        threads: tch::get_num_threads(),
        device: format!("{device:?}").to_lowercase(),
        precision: on.precision.as_str(),
    })
}

/// How an evaluation benchmark batches the dev set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalBatching {
    /// As `pelt sweep` evaluates: by length, up to 64 rows and `EVAL_TOKENS` padded tokens per batch.
    Pelt,
    /// Hugging Face Trainer's evaluation defaults: 8 examples at a time in file order, padded per batch.
    Trainer,
}

impl EvalBatching {
    /// `pelt` or `trainer`.
    pub fn parse(text: &str) -> Result<EvalBatching> {
        match text {
            "pelt" => Ok(EvalBatching::Pelt),
            "trainer" => Ok(EvalBatching::Trainer),
            other => bail!("--eval-batches `{other}`: expected `pelt` or `trainer`"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            EvalBatching::Pelt => "pelt",
            EvalBatching::Trainer => "trainer",
        }
    }
}

/// What one evaluation benchmark measured.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    /// `pelt`.
    pub side: &'static str,
    /// Registry name.
    pub method: String,
    /// `pelt` or `trainer`.
    pub batches: String,
    /// Median seconds of one pass over the dev set.
    pub median_pass_s: f64,
    /// Dev examples per second of the median pass.
    pub examples_per_s: f64,
    /// Examples per pass.
    pub examples: usize,
    /// Padded tokens per pass (rows × padded length, summed over batches).
    pub padded_tokens: usize,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// libtorch intra-op threads.
    pub threads: i32,
}

/// Times `passes` evaluation passes (after `warmup` untimed ones) over the SST-2 dev set with a freshly
/// built `method` (its initial weights; evaluation cost does not depend on them): forward through
/// backbone and head without gradients, dropout off, predictions read back, as `pelt sweep` evaluates.
#[allow(clippy::too_many_arguments)]
pub fn eval(
    registry: &Registry,
    model_dir: &Path,
    method: &str,
    config: &serde_yaml::Value,
    glue_dir: &Path,
    batching: EvalBatching,
    warmup: usize,
    passes: usize,
    threads: i32,
) -> Result<EvalReport> {
    let device = Device::Cpu;
    let (backbone, m, head) = model(registry, model_dir, method, config, threads, device)?;
    let ds = glue::load(glue_dir, glue::GlueTask::Sst2)?;
    // pelt's GLUE loader keeps the official dev set as its test split.
    let dev = &ds.test;
    let tok = TextTokenizer::load(&model_dir.join("tokenizer.json"), 128)?;
    let enc: Vec<Encoding> = tok.encode(dev)?;
    let lengths: Vec<usize> = enc.iter().map(|e| e.ids.len()).collect();
    let batches: Vec<Vec<usize>> = match batching {
        EvalBatching::Pelt => eval_batches(&lengths, 64, EVAL_TOKENS),
        EvalBatching::Trainer => (0..enc.len()).collect::<Vec<_>>().chunks(8).map(<[usize]>::to_vec).collect(),
    };
    let padded_tokens =
        batches.iter().map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap_or(0)).sum::<usize>();
    let mut times = Vec::new();
    for pass in 0..warmup + passes {
        let started = std::time::Instant::now();
        tch::no_grad(|| {
            // As `pelt sweep` evaluates: a reparameterised method merged into the weights for the pass.
            let (_merged, method) = pelt_core::for_evaluation(&backbone, m.as_ref());
            for b in &batches {
                let rows: Vec<&Encoding> = b.iter().map(|&i| &enc[i]).collect();
                let logits = head.forward(&backbone.forward(&inputs(&rows, tok.pad_id, device), method, false), false);
                let _ = Vec::<i64>::try_from(logits.argmax(-1, false)).unwrap_or_default();
            }
        });
        if pass >= warmup {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    let median = median(times);
    Ok(EvalReport {
        side: "pelt",
        method: method.to_owned(),
        batches: batching.name().to_owned(),
        median_pass_s: median,
        examples_per_s: enc.len() as f64 / median,
        examples: enc.len(),
        padded_tokens,
        peak_rss_mib: host::peak_rss_mib(),
        threads: tch::get_num_threads(),
    })
}

/// Median fp32 matmul rate (GFLOP/s) of libtorch on n × n matrices.
pub fn matmul_gflops(n: i64, reps: usize, threads: i32) -> f64 {
    if threads > 0 {
        tch::set_num_threads(threads);
    }
    let _guard = tch::no_grad_guard();
    let a = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let _ = a.matmul(&b);
    let times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = std::time::Instant::now();
            let c = a.matmul(&b);
            let _ = c.double_value(&[0, 0]);
            t.elapsed().as_secs_f64()
        })
        .collect();
    2.0 * (n as f64).powi(3) / median(times) / 1e9
}

/// Loads a method config given on the command line as YAML (`{r: 8}`); empty means defaults.
pub fn parse_config(text: &str) -> Result<serde_yaml::Value> {
    if text.trim().is_empty() {
        return Ok(serde_yaml::Value::Null);
    }
    serde_yaml::from_str(text).with_context(|| format!("--config `{text}`: not YAML"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_tokens_are_in_vocabulary_and_start_with_cls() {
        assert_eq!(fixed_token(3, 0), 101);
        for r in 0..32 {
            for p in 1..128 {
                let t = fixed_token(r, p);
                assert!((1000..21_000).contains(&t));
            }
        }
        // The Python side hard-codes these values of the formula.
        assert_eq!(fixed_token(1, 1), 1000 + (7919 + 104_729) % 20_000);
        assert_eq!(fixed_token(5, 7), 1000 + (5 * 7919 + 7 * 104_729) % 20_000);
    }
}

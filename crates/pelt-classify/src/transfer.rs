//! The two-stage transfer protocol (Polytropon, ATTEMPT): the method first trains on several source
//! tasks together, each step one task's batch with its own head and task id; then it adapts to the
//! target as a single-task run does. Source training is the same for every target, size and seed of a
//! method, so it runs once per (method, seed) and is kept beside the suite's records.

use crate::{
    data::{SplitName, TaskData},
    run::{label_tensor, loss_of, task_head},
};
use anyhow::{anyhow, Context, Result};
use indicatif::ProgressBar;
use pelt_backbone::ClassificationHead;
use pelt_core::{params, Backbone, Method};
use pelt_data::Label;
use pelt_train::{batch::bucketed_batches, schedule, AdamW, Training};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, path::PathBuf};
use tch::{Device, Kind, Tensor};

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

/// Stage one of the transfer protocol: trains the method on every source task (each step one task's
/// batch, with that task's own head and task id), or loads the result of an earlier run with the same
/// method, seed and settings. Returns diagnostics (`source_steps`, `source_loss_<task>`: mean loss of
/// each source over the last quarter of its steps), or an error message when the loss diverged.
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_sources(
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
            .source(SplitName::Train, backbone.dims().image, training.pad_to())
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

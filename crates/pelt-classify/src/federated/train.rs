//! One federated run: the run's training subset split over clients, rounds of sampled clients training
//! from the global parameters, the server's aggregation, dev selection over rounds, the test of the best
//! round; bytes up and down counted.

use super::{partition, Aggregator, Federated, Partition};
use crate::{
    data::TaskData,
    run::{label_tensor, loss_of, optimised, run_data, task_head, Ctx, Subset},
};
use anyhow::{anyhow, bail, Result};
use indicatif::ProgressBar;
use pelt_core::{federated::Server, params, Backbone, Registry};
use pelt_data::Label;
use pelt_records::DataSize;
use pelt_train::{
    batch::bucketed_batches, mean, seeded_method, AdamW, EvalClock, MethodSpec, Outcome, Selection, Training,
};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Bytes per value the server broadcasts (float32).
pub const BYTES_PER_VALUE: f64 = 4.0;

/// The classes a partition skews over: the labels, or a regression task's score quintiles.
fn partition_labels(gold: &[Label]) -> Vec<usize> {
    match gold.first() {
        Some(Label::Score(_)) => partition::score_bins(&gold.iter().map(|l| l.value()).collect::<Vec<_>>()),
        _ => gold.iter().map(|l| l.value() as usize).collect(),
    }
}

/// The clients' shards: positions into the training subset.
pub fn shards(fed: &Federated, gold: &[Label], seed: u64) -> Vec<Vec<usize>> {
    let n = gold.len();
    let labels = || partition_labels(gold);
    let seed = seed ^ 0x0fed;
    match fed.partition() {
        Partition::Iid => partition::iid(n, fed.clients, seed),
        Partition::Dirichlet { alpha } => partition::dirichlet_labels(&labels(), fed.clients, alpha, seed),
        Partition::QuantitySkew { beta } => partition::quantity_skew(n, fed.clients, beta, seed),
    }
}

/// Copies `values` into the parameters.
fn load(params: &[(String, Tensor)], values: &[Tensor]) {
    tch::no_grad(|| {
        for ((_, p), v) in params.iter().zip(values) {
            p.shallow_clone().copy_(v);
        }
    });
}

/// Copies of the parameters' current values.
fn snapshot(params: &[(String, Tensor)]) -> Vec<Tensor> {
    params.iter().map(|(_, p)| p.detach().copy()).collect()
}

/// Trains and evaluates one federated (method, task, size, seed); the backbone holds its pretrained
/// weights on entry and the caller restores them afterwards.
#[allow(clippy::too_many_arguments)]
pub fn run(
    registry: &Registry,
    backbone: &dyn Backbone,
    spec: &MethodSpec,
    task: &TaskData,
    size: DataSize,
    seed: u64,
    training: &Training,
    fed: &Federated,
    device: Device,
    bar: &ProgressBar,
) -> Result<Outcome> {
    let ds = &task.dataset;
    let (train, dev, test) = run_data(task, size, seed, training, backbone.dims().image)?;
    fed.check(Some(train.len())).map_err(|r| anyhow!("federated.{}: {}", r.field, r.message))?;
    let clients = shards(fed, &train.gold, seed);

    let method = seeded_method(registry, spec, backbone, seed, device)?;
    if let Err(why) = method.federates() {
        bail!("{} cannot train federated: {why}", spec.method);
    }
    let head = task_head(backbone, &ds.labels, &train.gold, device);
    let (_, all) = optimised(backbone, method.as_ref(), &head);
    let values: f64 = all.iter().map(|(_, t)| t.numel() as f64).sum();
    let up_bytes = fed.compression.bytes(all.iter().map(|(_, t)| t.numel() as i64));
    let counts = params::count(backbone, method.as_ref(), params::numel(head.var_store().trainable_variables().iter()));
    let ctx = Ctx {
        backbone,
        method: method.as_ref(),
        head: &head,
        task,
        training,
        device,
        frozen: false,
        clock: EvalClock::default(),
    };

    let mut global = snapshot(&all);
    let mut server = Server::new(fed.aggregator(), &global);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut selection = Selection::default();
    let per_round = fed.per_round();
    let head_scale = training.head_lr.map_or(1.0, |h| h / spec.lr);
    let mu = match fed.aggregator() {
        Aggregator::Fedprox { mu } => mu,
        _ => 0.0,
    };
    bar.set_length(fed.rounds as u64);
    bar.set_position(0);
    let (mut steps, mut examples, mut seconds) = (0usize, 0usize, 0.0);
    let mut diverged = None;
    'rounds: for round in 1..=fed.rounds {
        let chosen = sample(&mut rng, fed.clients, per_round).into_vec();
        let mut updates = Vec::with_capacity(chosen.len());
        for c in chosen {
            let shard: Vec<usize> = clients[c].clone();
            let local = Subset {
                source: train.source,
                idx: shard.iter().map(|&i| train.idx[i]).collect(),
                gold: shard.iter().map(|&i| train.gold[i]).collect(),
            };
            load(&all, &global);
            // A fresh optimiser per client and round, as FedAvg prescribes; a constant rate.
            let mut opt = AdamW::new(&all, training.weight_decay)
                .scale_group("head.", head_scale)
                .method_rates(method.as_ref(), spec.lr);
            let lengths = local.lengths();
            let batches: Vec<Vec<usize>> = match (fed.local_steps, fed.local_epochs) {
                (Some(k), _) => std::iter::repeat_with(|| bucketed_batches(&lengths, training.batch_size, &mut rng))
                    .flatten()
                    .take(k)
                    .collect(),
                (None, e) => (0..e.unwrap_or(1))
                    .flat_map(|_| bucketed_batches(&lengths, training.batch_size, &mut rng))
                    .collect(),
            };
            let started = std::time::Instant::now();
            for b in &batches {
                let gold: Vec<Label> = b.iter().map(|&i| local.gold[i]).collect();
                let logits = head.forward(&backbone.forward(&local.batch(b, device), method.as_ref(), true), true);
                let mut loss = loss_of(&logits, &label_tensor(&gold, device), &ds.labels);
                if mu > 0.0 {
                    let prox = all
                        .iter()
                        .zip(&global)
                        .map(|((_, p), g)| (p - g).square().sum(Kind::Float))
                        .fold(Tensor::zeros([], (Kind::Float, device)), |a, b| a + b);
                    loss += prox * (mu / 2.0);
                }
                match opt.train_step(&loss, method.as_ref(), training.max_grad_norm, spec.lr) {
                    Ok(value) => selection.add_loss(value),
                    Err(v) => {
                        diverged = Some(format!("loss became {v} in round {round}"));
                        break 'rounds;
                    }
                }
                steps += 1;
                examples += b.len();
            }
            seconds += started.elapsed().as_secs_f64();
            let sent = all.iter().zip(&global).map(|((_, p), g)| fed.compression.received(g, p)).collect();
            updates.push((sent, local.len()));
        }
        server.aggregate(&mut global, &updates);
        bar.set_position(round as u64);
        if round % fed.eval_every == 0 || round == fed.rounds {
            load(&all, &global);
            selection.observe(round, mean(&ctx.evaluate(&dev, None)), &all);
        }
    }
    let rounds_run = selection.curve().last().map_or(0, |p| p.step);
    let mb = |rounds: usize, bytes: f64| rounds as f64 * per_round as f64 * bytes / 1e6;
    let mut diagnostics = BTreeMap::from([
        ("fed_rounds".to_owned(), rounds_run as f64),
        ("fed_clients_per_round".to_owned(), per_round as f64),
        ("fed_values_sent".to_owned(), values),
        // Each sampled client receives the global parameters and sends its own back.
        ("fed_mb_down".to_owned(), mb(rounds_run, values * BYTES_PER_VALUE)),
        ("fed_mb_up".to_owned(), mb(rounds_run, up_bytes)),
        ("fed_label_tv".to_owned(), partition::mean_tv_distance(&partition_labels(&train.gold), &clients)),
    ]);
    diagnostics.extend(method.diagnostics());
    let (metrics, best_dev) = match &diverged {
        Some(_) => (BTreeMap::new(), None),
        None => {
            let best = selection.restore_best(&all).ok_or_else(|| anyhow!("no dev evaluation happened"))?;
            (ctx.evaluate(&test, None), Some(best))
        }
    };
    Ok(Outcome {
        score: diverged.is_none().then(|| mean(&metrics)),
        diverged,
        metrics,
        best_dev,
        curve: selection.curve().to_vec(),
        steps,
        sizes: (train.len(), dev.len(), test.len()),
        params: counts,
        train_eps: examples as f64 / seconds.max(1e-9),
        eval_eps: ctx.clock.examples_per_second(),
        diagnostics,
        samples: Vec::new(),
        checkpoint: None,
    })
}

//! The training loop every task family shares: AdamW under a linear warm-up and decay schedule with
//! global-norm clipping, dev evaluations on the schedule of `training.eval_every`, and checkpoint
//! selection. A family supplies only its hooks ([`Steps`]): how an epoch is batched, the loss of a
//! batch, and the dev score.

use crate::{
    optim::AdamW,
    select::Selection,
    settings::{EvalEvery, Training},
};
use anyhow::Result;
use indicatif::ProgressBar;
use pelt_amp::{autocast, GradScaler, Precision};
use pelt_core::Method;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// The learning rate at `step` of `total`: linear warm-up over `warmup` steps, then linear decay to 0.
pub fn schedule(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else {
        peak * (total - step) as f64 / (total - warmup).max(1) as f64
    }
}

/// Optimizer steps of a run with `per_epoch` batches per epoch: `training.epochs` epochs, at least
/// `min_steps`, at most `max_steps` (when set).
pub fn total_steps(training: &Training, per_epoch: usize) -> usize {
    let total = (training.epochs * per_epoch).max(training.min_steps);
    if training.max_steps > 0 {
        total.min(training.max_steps)
    } else {
        total
    }
}

/// Warm-up steps of a run of `total` steps.
pub fn warmup_steps(training: &Training, total: usize) -> usize {
    (training.warmup_ratio * total as f64).round() as usize
}

/// A task family's side of [`fit`].
pub trait Steps {
    /// One training batch as the family draws it.
    type Batch;
    /// One epoch's batches, drawn with the run's generator.
    fn epoch(&self, rng: &mut ChaCha8Rng) -> Vec<Self::Batch>;
    /// The training loss of a batch (dropout on) and the number of examples in it.
    fn loss(&self, batch: &Self::Batch) -> (Tensor, usize);
    /// The dev score (0–100) of the current weights, which selects the checkpoint.
    fn dev_score(&self) -> Result<f64>;
}

/// How a [`fit`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Training examples seen.
    pub examples: usize,
    /// Seconds spent in training steps (evaluations excluded).
    pub seconds: f64,
    /// `Some(message)` when the loss became NaN or infinite; training stopped there.
    pub diverged: Option<String>,
}

impl Fit {
    /// Training examples per second.
    pub fn examples_per_second(&self) -> f64 {
        self.examples as f64 / self.seconds.max(1e-9)
    }
}

/// What stays fixed through a [`fit`]: the optimiser and the method it updates, the trainable
/// tensors that selection snapshots, the peak learning rate and the step budget.
pub struct Plan<'a> {
    /// The optimiser, built on `params`.
    pub opt: &'a mut AdamW,
    /// The method (its `after_backward` gradient masks run in each step).
    pub method: &'a dyn Method,
    /// Every trainable tensor, in the order selection snapshots and restores them.
    pub params: &'a [(String, Tensor)],
    /// Peak learning rate of the schedule.
    pub lr: f64,
    /// Optimizer steps to take.
    pub total: usize,
    /// Clipping, warm-up and evaluation schedule.
    pub training: &'a Training,
}

/// Trains for `plan.total` steps (epochs of `steps.epoch` batches, drawn with `rng`), evaluating the
/// dev set every `eval_every` steps (or epochs) and at the last step, and leaves the curve and the best
/// checkpoint in `selection`. A non-finite loss stops training and is reported in [`Fit::diverged`].
pub fn fit<S: Steps>(
    steps: &S,
    plan: Plan,
    rng: &mut ChaCha8Rng,
    selection: &mut Selection,
    bar: &ProgressBar,
) -> Result<Fit> {
    let Plan { opt, method, params, lr, total, training } = plan;
    let warmup = warmup_steps(training, total);
    method.begin_training(total);
    // Mixed precision: the forward pass and the loss under autocast on the parameters' device, the
    // backward outside it; fp16 scales the loss.
    let (precision, device) = (training.precision, params.first().map_or(tch::Device::Cpu, |(_, t)| t.device()));
    let mut scaler = (precision == Precision::Fp16).then(GradScaler::default);
    bar.set_length(total as u64);
    bar.set_position(0);
    let mut fit = Fit { steps: 0, examples: 0, seconds: 0.0, diverged: None };
    'outer: while fit.steps < total {
        for batch in steps.epoch(rng) {
            let started = std::time::Instant::now();
            let step = fit.steps;
            let (loss, examples) = autocast(precision, device, || steps.loss(&batch));
            let rate = schedule(lr, step, warmup, total);
            let stepped = match scaler.as_mut() {
                Some(scaler) => opt.train_step_scaled(&loss, method, training.max_grad_norm, rate, scaler),
                None => opt.train_step(&loss, method, training.max_grad_norm, rate),
            };
            match stepped {
                Ok(value) => selection.add_loss(value),
                Err(value) => {
                    fit.diverged = Some(format!("loss became {value} at step {step}"));
                    break 'outer;
                }
            }
            fit.steps += 1;
            fit.examples += examples;
            fit.seconds += started.elapsed().as_secs_f64();
            bar.set_position(fit.steps as u64);
            let due = matches!(training.eval_every, EvalEvery::Steps(n) if fit.steps.is_multiple_of(n));
            if due || fit.steps == total {
                selection.observe(fit.steps, autocast(precision, device, || steps.dev_score())?, params);
            }
            if fit.steps == total {
                break 'outer;
            }
        }
        if training.eval_every == EvalEvery::Epoch {
            selection.observe(fit.steps, autocast(precision, device, || steps.dev_score())?, params);
        }
    }
    Ok(fit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_budget_and_schedule() {
        let t = Training { epochs: 3, min_steps: 10, max_steps: 0, warmup_ratio: 0.1, ..Training::default() };
        assert_eq!(total_steps(&t, 2), 10, "min_steps lifts a short run");
        assert_eq!(total_steps(&t, 5), 15);
        assert_eq!(total_steps(&Training { max_steps: 12, ..t.clone() }, 5), 12);
        assert_eq!(warmup_steps(&t, 15), 2);
        assert_eq!(schedule(1.0, 0, 2, 10), 0.5);
        assert_eq!(schedule(1.0, 1, 2, 10), 1.0);
        assert_eq!(schedule(1.0, 6, 2, 10), 0.5);
    }
}

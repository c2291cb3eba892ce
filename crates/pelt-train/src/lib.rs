//! What every task family's runs share: the settings of experiment files (`training:`, `methods:`),
//! AdamW, the warm-up and decay schedule, the training loop with its dev evaluations, checkpoint
//! selection, length-bucketed training batches and evaluation batches by length, and the [`Family`] surface through which the sweep drives a
//! family. Nothing here knows a family's data, loss or metrics.

#![warn(missing_docs)]

pub mod batch;
pub mod family;
pub mod fit;
pub mod optim;
pub mod outcome;
pub mod select;
pub mod settings;

pub use family::{Family, Pristine, Run};
pub use fit::{fit, schedule, total_steps, warmup_steps, Fit, Plan, Steps};
pub use optim::AdamW;
pub use outcome::{Checkpoint, EvalClock, Outcome, Sample};
pub use pelt_amp::{autocast, GradScaler};
pub use select::Selection;
pub use settings::{EvalEvery, MethodSpec, Precision, Priming, Training};

/// A run's method, built from its entry's config and initialised from the backbone, its random
/// parameters drawn from the run's seed: how every task family starts a run.
pub fn seeded_method(
    registry: &pelt_core::Registry,
    spec: &MethodSpec,
    backbone: &dyn pelt_core::Backbone,
    seed: u64,
    device: tch::Device,
) -> anyhow::Result<Box<dyn pelt_core::Method>> {
    pelt_core::manual_seed(seed as i64);
    let method = (registry.get(&spec.method)?.build)(&spec.config, backbone.dims(), device)?;
    method.init_from(backbone);
    Ok(method)
}

/// Mean of a run's metrics (the GLUE convention for a task with two metrics), 0 for none.
pub fn mean(values: &std::collections::BTreeMap<String, f64>) -> f64 {
    values.values().sum::<f64>() / values.len().max(1) as f64
}

//! Trainable-parameter accounting and the freeze/unfreeze step before training.

use crate::{backbone::Backbone, method::Method};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Parameter counts of one run, reported with every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCount {
    /// Trainable parameters of the method: its own variables plus the backbone variables it unfreezes.
    pub method: i64,
    /// Parameters of the task head (always trained, reported apart as papers do).
    pub head: i64,
    /// All parameters of the pretrained backbone.
    pub backbone: i64,
}

impl ParamCount {
    /// Method parameters as a percentage of the backbone.
    pub fn method_percent(&self) -> f64 {
        100.0 * self.method as f64 / self.backbone as f64
    }

    /// Every trainable parameter, head included.
    pub fn trainable(&self) -> i64 {
        self.method + self.head
    }
}

/// Sets `requires_grad` on the backbone (only the variables the method names) and on the method's
/// own store, and returns the trainable variables by name (`backbone.` / `method.` prefixed), sorted,
/// so optimizer state is laid out deterministically.
pub fn prepare_training(backbone: &dyn Backbone, method: &dyn Method) -> Vec<(String, Tensor)> {
    let mut trainable = Vec::new();
    for (name, var) in backbone.var_store().variables() {
        let train = method.trains_backbone(&name);
        let _ = var.set_requires_grad(train);
        if train {
            trainable.push((format!("backbone.{name}"), var));
        }
    }
    for (name, var) in method.var_store().variables() {
        if var.requires_grad() {
            trainable.push((format!("method.{name}"), var));
        }
    }
    trainable.sort_by(|a, b| a.0.cmp(&b.0));
    trainable
}

/// Number of elements of every tensor in `vars`.
pub fn numel<'a>(vars: impl IntoIterator<Item = &'a Tensor>) -> i64 {
    vars.into_iter().map(|t| t.numel() as i64).sum()
}

/// Counts a method's trainable parameters (after [`prepare_training`]) against the backbone's size.
pub fn count(backbone: &dyn Backbone, method: &dyn Method, head: i64) -> ParamCount {
    let all = backbone.var_store().variables();
    let selected = numel(all.iter().filter(|(n, _)| method.trains_backbone(n)).map(|(_, v)| v));
    // requires_grad, not the store's trainable flag: multi-task methods freeze parts between stages.
    let own_vars: Vec<Tensor> = method.var_store().variables().into_values().filter(Tensor::requires_grad).collect();
    let own = numel(own_vars.iter()) - pruned(method);
    ParamCount { method: selected + own, head, backbone: numel(all.values()) }
}

/// Entries of the method's variables held at zero by its masks (see [`Method::masks`]).
pub fn pruned(method: &dyn Method) -> i64 {
    method.masks().iter().map(|(_, keep)| keep.numel() as i64 - keep.sum(tch::Kind::Int64).int64_value(&[])).sum()
}

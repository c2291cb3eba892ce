//! One record per finished run: what ran, what it scored, and everything needed to reproduce and
//! compare it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained and evaluated.
    Ok,
    /// The loss became NaN or infinite; recorded, and the sweep goes on.
    Diverged,
    /// An error stopped the run; retried on the next sweep.
    Failed,
}

/// One dev evaluation during training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimizer steps taken before the evaluation.
    pub step: usize,
    /// Dev score (0–100), the score that selects the checkpoint.
    #[serde(deserialize_with = "nan_if_null")]
    pub dev: f64,
    /// Mean training loss over the steps since the previous evaluation.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
}

/// JSON has no NaN: serde_json writes a non-finite float as `null`. Read it back as NaN, so that one
/// odd evaluation never makes a suite's records unreadable.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One finished run, with everything needed to reproduce and compare it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The run's key (also its file name).
    pub key: String,
    /// Experiment name.
    pub suite: String,
    /// Task name.
    pub task: String,
    /// Row label.
    pub method: String,
    /// Registry name of the method.
    pub method_name: String,
    /// The method's resolved configuration (defaults filled in).
    pub method_config: serde_json::Value,
    /// Hash of method, config, learning rate and training settings.
    pub config_hash: String,
    /// Peak learning rate.
    pub lr: f64,
    /// The sweep's training settings.
    pub training: serde_json::Value,
    /// `100`, `16-shot` or `all`.
    pub data_size: String,
    /// Seed.
    pub seed: u64,
    /// Outcome.
    pub status: Status,
    /// Error or divergence message.
    pub message: Option<String>,
    /// Test metrics (0–100).
    pub metrics: BTreeMap<String, f64>,
    /// Task score: the mean of the task's metrics (GLUE convention), 0–100.
    pub score: Option<f64>,
    /// Best dev score during training (0–100).
    pub best_dev_score: Option<f64>,
    /// Step of the best dev score.
    pub best_step: Option<usize>,
    /// Every dev evaluation in order, with the mean training loss since the one before: shows whether
    /// a run was still improving at its last step, or collapsed from its first evaluation on. Records
    /// written before pelt kept curves have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<CurvePoint>,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Examples trained on / used for selection / tested on.
    pub train_examples: usize,
    /// Dev examples.
    pub dev_examples: usize,
    /// Test examples.
    pub test_examples: usize,
    /// Trainable parameters of the method (excluding the task head).
    pub method_params: i64,
    /// Task-head parameters.
    pub head_params: i64,
    /// Backbone parameters.
    pub backbone_params: i64,
    /// Method parameters as % of the backbone.
    pub method_percent: f64,
    /// Seconds for the whole run (training and evaluation).
    pub wall_seconds: f64,
    /// Training throughput.
    pub train_examples_per_second: f64,
    /// Peak resident memory during the run, MiB.
    pub peak_rss_mib: f64,
    /// Method diagnostics (e.g. gate means).
    pub diagnostics: BTreeMap<String, f64>,
    /// pelt's git revision.
    pub pelt_revision: String,
    /// libtorch version.
    pub libtorch_version: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Host name, CPU model and thread count.
    pub machine: String,
    /// Unix time at which the run finished.
    pub finished_at: u64,
    /// SHA-256 (first 12 bytes, hex) of the task's examples — train, dev and test, texts or pixels and
    /// labels — as loaded: the data a run saw, whatever folder it came from. Classification runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_digest: Option<String>,
    /// The suite this run was trained in, when `pelt sweep --reuse` took it from there: the same task,
    /// method, config hash (config, learning rate, training settings, backbone), data size, seed and
    /// data digest, so the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// SHA-256 (hex) of the backbone's weight files (`*.safetensors`, in name order) as the run loaded
    /// them; records written before pelt kept it have none. Not part of the run key: committed records
    /// keep their keys, and resume and `--reuse` compare this field where both records have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_digest: Option<String>,
    /// Evaluation examples per second over the run's dev and test evaluations (generation included
    /// for summarization); records written before pelt kept it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_examples_per_second: Option<f64>,
    /// Precision of the run's forward and backward passes (`fp32`, `bf16`, `fp16`); records written
    /// before pelt kept it have none and ran in fp32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// The numerics revision the run was computed with ([`NUMERICS`]); records without one were made
    /// under revision 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerics: Option<u32>,
}

/// pelt's numerics revision: bumped whenever a change alters the floating-point results of the same
/// run (another kernel, another summation order), so that records say which arithmetic made them.
///
/// 1. Everything before 2026-12-07 (records without the field).
/// 2. The AdamW update and the gradient-norm clipping fused into one pass over each parameter (the
///    clipping factor multiplies the gradient inside the update; the norm is summed in f64); the
///    attention scale and padding mask applied inside the score product (β·mask + α·q·kᵀ) on the CPU
///    dropout path; no mask at all for batches without padding; evaluation batches of up to 2048
///    padded tokens (different batch shapes, so other GEMM blockings); reparameterised methods (LoRA,
///    KronA, KAdaptation, Poly-μ and the Polytropon family at their target stage) evaluated merged
///    into the weights (W + ΔW in one product).
pub const NUMERICS: u32 = 2;

/// A finished run of `method` on `task` at 100 examples, seed `seed`, for the tests and benchmarks of
/// the readers of records (tables, plots, pages): status ok, score 50, 150 steps, no curve; callers set
/// what they look at.
pub fn test_record(task: &str, method: &str, seed: u64) -> Record {
    serde_json::from_value(serde_json::json!({
        "key": format!("{task}__{method}__100__s{seed}"), "suite": "t", "task": task, "method": method,
        "method_name": method, "method_config": {}, "config_hash": "h", "lr": 1e-3,
        "training": {"eval_every": 50, "batch_size": 16}, "data_size": "100", "seed": seed, "status": "ok",
        "message": null, "metrics": {}, "score": 50.0, "best_dev_score": null, "best_step": null, "steps": 150,
        "train_examples": 100, "dev_examples": 100, "test_examples": 100, "method_params": 0, "head_params": 0,
        "backbone_params": 0, "method_percent": 0.0, "wall_seconds": 1.0, "train_examples_per_second": 1.0,
        "peak_rss_mib": 1.0, "diagnostics": {}, "pelt_revision": "r", "libtorch_version": "2.13.0", "device": "cpu",
        "machine": "m", "finished_at": 0
    }))
    .expect("a whole record")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_point_without_a_finite_value_reads_back_as_nan() {
        let point = CurvePoint { step: 50, dev: f64::NAN, train_loss: 0.25 };
        let text = serde_json::to_string(&point).unwrap();
        assert_eq!(text, r#"{"step":50,"dev":null,"train_loss":0.25}"#);
        let back: CurvePoint = serde_json::from_str(&text).unwrap();
        assert!(back.dev.is_nan() && back.step == 50 && back.train_loss == 0.25);
    }
}

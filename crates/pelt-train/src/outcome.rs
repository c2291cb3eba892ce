//! What a run hands back to the sweep, whatever its task family.

use pelt_core::ParamCount;
use pelt_records::CurvePoint;
use std::collections::BTreeMap;

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when training finished; `Some(message)` when the loss diverged.
    pub diverged: Option<String>,
    /// Test metrics, 0–100.
    pub metrics: BTreeMap<String, f64>,
    /// Mean of the test metrics.
    pub score: Option<f64>,
    /// Best dev score and its step.
    pub best_dev: Option<(f64, usize)>,
    /// Every dev evaluation (kept when the run diverged too, up to the last evaluation before).
    pub curve: Vec<CurvePoint>,
    /// Steps taken.
    pub steps: usize,
    /// Split sizes.
    pub sizes: (usize, usize, usize),
    /// Parameter counts.
    pub params: ParamCount,
    /// Training examples per second.
    pub train_eps: f64,
    /// Method diagnostics.
    pub diagnostics: BTreeMap<String, f64>,
    /// A few test outputs with their references (generated summaries), kept beside the record.
    pub samples: Vec<(String, String)>,
}

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
    /// Evaluation examples per second over every dev and test evaluation of the run (`None`: none ran).
    pub eval_eps: Option<f64>,
    /// Method diagnostics.
    pub diagnostics: BTreeMap<String, f64>,
    /// A few test outputs with their references (generated summaries), kept beside the record.
    pub samples: Vec<(String, String)>,
}

/// Time and examples spent in a run's evaluations, for the record's evaluation rate.
#[derive(Debug, Default)]
pub struct EvalClock {
    examples: std::cell::Cell<usize>,
    seconds: std::cell::Cell<f64>,
}

impl EvalClock {
    /// Runs `f`, an evaluation of `examples` examples, and adds its time.
    pub fn measure<T>(&self, examples: usize, f: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let out = f();
        self.seconds.set(self.seconds.get() + started.elapsed().as_secs_f64());
        self.examples.set(self.examples.get() + examples);
        out
    }

    /// Examples per second over everything measured; `None` before any evaluation.
    pub fn examples_per_second(&self) -> Option<f64> {
        (self.examples.get() > 0).then(|| self.examples.get() as f64 / self.seconds.get().max(1e-9))
    }
}

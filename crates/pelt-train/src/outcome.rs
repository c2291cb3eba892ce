//! What a run hands back to the sweep, whatever its task family.

use pelt_core::ParamCount;
use pelt_records::CurvePoint;
use std::collections::BTreeMap;
use tch::Tensor;

/// One test output kept beside a record, to read with the scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// What the model was given (the article, shortened; the linearised table with any plan; the query).
    pub input: String,
    /// What it produced.
    pub generated: String,
    /// The (first) reference.
    pub reference: String,
}

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
    /// A few test outputs with their inputs and references (generated summaries, texts from tables,
    /// predicted spans), kept beside the record.
    pub samples: Vec<Sample>,
    /// The trained parameters at the best dev step, when the sweep asked to keep them
    /// ([`crate::Run::keep`]) and the run did not diverge.
    pub checkpoint: Option<Checkpoint>,
}

/// A run's trained parameters at its best dev step, as the sweep saves them (`--save-adapters`).
#[derive(Debug)]
pub struct Checkpoint {
    /// Named tensors on the CPU: `method.<name>` for every variable of the method's store,
    /// `head.<name>` for the task head's, `backbone.<name>` for backbone variables the method trained
    /// (selective methods, full fine-tuning), and `check.<name>` for a check batch of test inputs with
    /// the logits the run computes for them (`check.input_ids`, `check.attention_mask`,
    /// `check.token_type_ids`, `check.logits`), so an exported adapter can be checked elsewhere.
    pub tensors: Vec<(String, Tensor)>,
    /// What using the tensors takes besides the method's config: the head's pooling and outputs,
    /// the task's labels.
    pub meta: serde_json::Value,
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

//! The surface every task family offers the sweep: load and prepare a task, say what data a run saw,
//! train and evaluate one method instance, and put the pretrained weights back between runs. The
//! sweep (grid, keys, shards, resume, records) knows nothing else of a family.

use crate::{outcome::Outcome, settings::MethodSpec};
use anyhow::Result;
use indicatif::ProgressBar;
use pelt_records::DataSize;
use tch::{nn::VarStore, Tensor};

/// One run as the sweep hands it to a family.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// The method with its config and learning rate.
    pub spec: &'a MethodSpec,
    /// Training-set size.
    pub size: DataSize,
    /// Seed of the data draw, the method's init and the batch order.
    pub seed: u64,
    /// The run's config hash (it names what a family caches per method and seed).
    pub hash: &'a str,
    /// Whether to hand back the trained parameters ([`Outcome::checkpoint`]).
    pub keep: bool,
}

/// A task family: sequence classification, seq2seq generation, and the families to come.
pub trait Family {
    /// A task's data, read and tokenised once per sweep.
    type Task;

    /// Reads and prepares the task `name`.
    fn prepare(&self, name: &str) -> Result<Self::Task>;

    /// A digest of the task's examples as loaded, recorded with each run and compared by `--reuse`;
    /// `None` where the family does not keep one.
    fn digest(&self, task: &Self::Task) -> Option<String>;

    /// Trains one method instance on `tasks` (one task, or all of the suite's for a shared method) and
    /// returns each task's outcome, in order. The model holds its pretrained weights on entry.
    fn run(&self, run: &Run, tasks: &[&Self::Task], bar: &ProgressBar) -> Result<Vec<Outcome>>;

    /// Puts the model's pretrained weights back (selective methods and full fine-tuning change them).
    fn restore_pretrained(&self);
}

/// A copy of a model's pretrained weights, put back before each run.
#[derive(Debug)]
pub struct Pristine(Vec<(Tensor, Tensor)>);

impl Pristine {
    /// Copies every variable of `vs`.
    pub fn of(vs: &VarStore) -> Pristine {
        Pristine(vs.variables().into_values().map(|t| (t.shallow_clone(), t.detach().copy())).collect())
    }

    /// Writes the copies back into the variables.
    pub fn restore(&self) {
        tch::no_grad(|| {
            for (dst, src) in &self.0 {
                dst.shallow_clone().copy_(src);
            }
        });
    }
}

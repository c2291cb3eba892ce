//! Examples, label spaces and datasets with their splits.

use crate::metrics::Metric;
use serde::{Deserialize, Serialize};

/// A gold label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Label {
    /// Index into the task's class names.
    Class(usize),
    /// A regression target (STS-B similarity).
    Score(f32),
}

impl Label {
    /// The value as f64 (class index or score), for metrics.
    pub fn value(self) -> f64 {
        match self {
            Label::Class(c) => c as f64,
            Label::Score(s) => f64::from(s),
        }
    }
}

/// One example: a text or a text pair and its label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// First (or only) text.
    pub text_a: String,
    /// Second text of a pair task.
    pub text_b: Option<String>,
    /// Gold label.
    pub label: Label,
}

/// What the labels of a task are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LabelSpace {
    /// Classification with these class names (index = label).
    Classes(Vec<String>),
    /// Regression to one real value.
    Regression,
}

impl LabelSpace {
    /// Number of head outputs: classes, or 1 for regression.
    pub fn outputs(&self) -> i64 {
        match self {
            LabelSpace::Classes(c) => c.len() as i64,
            LabelSpace::Regression => 1,
        }
    }
}

/// A task with its splits. `dev` is `None` where the protocol draws model-selection data from train
/// (GLUE, whose official dev set serves as the test set).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Task name as used in experiment files.
    pub name: String,
    /// Labels.
    pub labels: LabelSpace,
    /// Metrics reported; the task score is their mean (GLUE convention).
    pub metrics: Vec<Metric>,
    /// Training pool.
    pub train: Vec<Example>,
    /// Fixed model-selection split, if the task has one.
    pub dev: Option<Vec<Example>>,
    /// Held-out evaluation split.
    pub test: Vec<Example>,
    /// Rows skipped as known-malformed in the official files (QQP), reported, never silent.
    pub skipped_rows: usize,
}

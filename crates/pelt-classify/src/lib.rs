//! The sequence-classification task family: GLUE-style classification and regression on text
//! encoders, image classification on a ViT, the two-stage multi-task transfer protocol (Polytropon,
//! ATTEMPT), and the small ViT that pelt pretrains for its vision sweeps. Its runs go through the
//! shared loop of `pelt-train`; the sweep drives it through [`Classification`], a
//! [`pelt_train::Family`].

#![warn(missing_docs)]

pub mod data;
mod family;
pub mod federated;
pub mod pretrain;
pub mod run;
pub mod transfer;

pub use data::{TaskData, TaskFiles, SHIPPED, VISION};
pub use family::Classification;
pub use transfer::{Sampling, Transfer};

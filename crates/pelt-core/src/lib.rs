//! pelt-core: the shared vocabulary of pelt.
//!
//! Every parameter-efficient method is described in the terms of He et al., "Towards a Unified View of
//! Parameter-Efficient Transfer Learning" (ICLR 2022): a modification Δ of a hidden state at a [`Site`] of
//! the backbone, computed in a [`Form`] and composed with a [`Scale`]. Backbones expose the sites through
//! the [`Attachment`] hooks, methods implement them, and [`compose`] is the one place where `h + s·Δ`
//! happens, so no method re-implements composition.
//!
//! Method variables live in the method's own `VarStore`, apart from the frozen backbone, so "only the
//! method's parameters train" is structural; selective methods instead name the backbone variables they
//! unfreeze ([`Method::trains_backbone`]). [`params`] counts both from the stores.

#![warn(missing_docs)]

pub mod backbone;
pub mod config;
pub mod dropout;
pub mod error;
pub mod federated;
pub mod merge;
pub mod method;
pub mod params;
pub mod registry;
pub mod site;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use backbone::{is_layer_layer_norm, is_layer_norm, Backbone, BackboneDims, Encoded, ImageDims, Inputs};
pub use config::{parse_config, ConfigError, MethodConfig, Width};
pub use dropout::{manual_seed, Dropout};
pub use error::{PeltError, Result};
pub use merge::{for_evaluation, EvalMerge};
pub use method::{
    run_calibration, Attachment, Delta, Identity, Method, NoMethod, OwnRate, PlannerSettings, Prefix, SiteTable,
};
pub use params::{prepare_training, ParamCount};
pub use registry::{MethodEntry, MethodInfo, Registry};
pub use site::{compose, hooked_sublayer, Form, Scale, ScaleKind, Site};

/// Re-exported so that [`method_entry!`] works in crates that name the YAML crate differently.
pub use serde_yaml;
pub use store::{load_trainable, save_trainable};
pub mod store;

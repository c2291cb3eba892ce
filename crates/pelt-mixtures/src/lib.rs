//! pelt-mixtures: methods composed of other methods.
//!
//! - MAM adapter (He et al., "Towards a Unified View of Parameter-Efficient Transfer Learning", ICLR
//!   2022): prefix tuning in attention plus a scaled parallel adapter beside the FFN — the two placements
//!   the paper found best for each sublayer.
//!
//! A mixture holds its parts and forwards each hook to the part that owns that site; composition still
//! happens once, in the backbone, through `pelt_core::compose`.

#![warn(missing_docs)]

pub mod mam;

pub use mam::Mam;

use mam::MamConfig;
use pelt_core::{method_entry, Form, MethodEntry, MethodInfo, ScaleKind, Site};

/// Registry entries of this crate.
pub fn methods() -> Vec<MethodEntry> {
    vec![method_entry!(
        MethodInfo {
            name: "mam",
            family: "mixtures",
            paper: "He et al. 2022, Towards a Unified View of Parameter-Efficient Transfer Learning (MAM adapter)",
            sites: &[Site::AttentionKv, Site::FfnOutput],
            form: Form::Parallel,
            scale: ScaleKind::Fixed,
            formula: "prefix_tuning (P = 30) + scaled_parallel_adapter (m = 512, s = 4)",
        },
        MamConfig,
        Mam::new
    )]
}

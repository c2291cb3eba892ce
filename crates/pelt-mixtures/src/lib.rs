//! pelt-mixtures: methods composed of other methods.
//!
//! - MAM adapter (He et al., "Towards a Unified View of Parameter-Efficient Transfer Learning", ICLR
//!   2022): prefix tuning in attention plus a scaled parallel adapter beside the FFN — the two placements
//!   the paper found best for each sublayer.
//!
//! - UniPELT (Mao et al., ACL 2022): adapter, prefix and LoRA in every layer, each scaled by a gate
//!   computed from the hidden state; the gates' means are reported with the results.
//!
//! A mixture holds its parts and forwards each hook to the part that owns that site; composition still
//! happens once, in the backbone, through `pelt_core::compose`.

#![warn(missing_docs)]

pub mod mam;
pub mod unipelt;

pub use mam::Mam;
pub use unipelt::UniPelt;

use mam::MamConfig;
use pelt_core::{method_entry, Form, MethodEntry, MethodInfo, ScaleKind, Site};
use unipelt::UniPeltConfig;

/// Registry entries of this crate.
pub fn methods() -> Vec<MethodEntry> {
    vec![
        method_entry!(
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
        ),
        method_entry!(
            MethodInfo {
                name: "unipelt",
                family: "mixtures",
                paper: "Mao et al. 2022, UniPELT: A Unified Framework for Parameter-Efficient Language Model Tuning",
                sites: &[Site::Query, Site::Value, Site::AttentionKv, Site::FfnOutput],
                form: Form::Sequential,
                scale: ScaleKind::Gated,
                formula: "prefix_tuning + lora + pfeiffer adapter + 3L(d + 1) gates",
            },
            UniPeltConfig,
            UniPelt::new
        ),
    ]
}

//! pelt-lowrank: low-rank reparameterisations of the backbone's projections.
//!
//! - LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022):
//!   W x + (α/r)·B A x on chosen projections (query and value by default), A Kaiming-uniform, B zero, so
//!   ΔW = 0 at init; mergeable into W for inference.

#![warn(missing_docs)]

pub mod config;
pub mod lora;

pub use lora::Lora;

use config::LoraConfig;
use pelt_core::{method_entry, Form, MethodEntry, MethodInfo, ScaleKind, Site};

/// Registry entries of this crate.
pub fn methods() -> Vec<MethodEntry> {
    vec![method_entry!(
        MethodInfo {
            name: "lora",
            family: "low-rank",
            paper: "Hu et al. 2022, LoRA: Low-Rank Adaptation of Large Language Models",
            sites: &[Site::Query, Site::Value],
            form: Form::Reparameterized,
            scale: ScaleKind::Fixed,
            formula: "L·Σ_targets r·(d_in + d_out) (query, value: 4Lrd)",
        },
        LoraConfig,
        Lora::new
    )]
}

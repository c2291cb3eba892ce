//! pelt-adapters: bottleneck adapters inserted into the backbone's sublayers.
//!
//! - Houlsby (Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML 2019): a
//!   down-projection, nonlinearity and up-projection after the attention sublayer and after the FFN,
//!   in sequential form (Δ computed from the sublayer output h, added before the residual and
//!   LayerNorm), initialised near identity; the layers' LayerNorms train too, as in the paper.

#![warn(missing_docs)]

pub mod config;
pub mod houlsby;

pub use houlsby::Houlsby;

use config::HoulsbyConfig;
use pelt_core::{method_entry, Form, MethodEntry, MethodInfo, ScaleKind, Site};

/// Registry entries of this crate.
pub fn methods() -> Vec<MethodEntry> {
    vec![method_entry!(
        MethodInfo {
            name: "houlsby",
            family: "adapters",
            paper: "Houlsby et al. 2019, Parameter-Efficient Transfer Learning for NLP",
            sites: &[Site::AttentionOutput, Site::FfnOutput, Site::LayerNorm],
            form: Form::Sequential,
            scale: ScaleKind::Fixed,
            formula: "L·s·(2dm + d + m) + L·4d with LayerNorms (s sites, bottleneck m)",
        },
        HoulsbyConfig,
        Houlsby::new
    )]
}

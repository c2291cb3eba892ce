//! pelt-mixtures: methods composed of other methods.
//!
//! - MAM adapter (He et al., "Towards a Unified View of Parameter-Efficient Transfer Learning", ICLR
//!   2022): prefix tuning in attention plus a scaled parallel adapter beside the FFN — the two placements
//!   the paper found best for each sublayer.
//!
//! - UniPELT (Mao et al., ACL 2022): adapter, prefix and LoRA in every layer, each scaled by a gate
//!   computed from the hidden state; the gates' means are reported with the results.
//!
//! - Polytropon, Poly-S and Poly-μ (Ponti et al. 2022; Caccia et al. 2023): an inventory of LoRA modules
//!   per projection and a learned task-to-module routing, single- or multi-head; Poly-μ averages the
//!   inventory before adapting to a new task.
//!
//! - PCG (Luo et al., COLING 2022): MAM's prefix and scaled parallel adapter in the encoder as the
//!   task-specific prefix, and a content plan put in front of each data-to-text input as the
//!   input-specific one.
//!
//! - ATTEMPT (Asai et al. 2022): frozen source prompts and a target prompt, mixed per input by attention.
//!
//! The last two route examples by task and follow the two-stage protocol (source tasks, then a target)
//! through `Method::begin_sources` / `Method::begin_target`.
//!
//! A mixture holds its parts and forwards each hook to the part that owns that site; composition still
//! happens once, in the backbone, through `pelt_core::compose`.

#![warn(missing_docs)]

pub mod attempt;
pub mod mam;
pub mod pcg;
pub mod poly;
pub mod unipelt;

pub use attempt::Attempt;
pub use mam::Mam;
pub use pcg::Pcg;
pub use poly::Poly;
pub use unipelt::UniPelt;

use attempt::AttemptConfig;
use mam::MamConfig;
use pcg::PcgConfig;
use pelt_core::{method_entry, Form, MethodEntry, MethodInfo, ScaleKind, Site};
use poly::PolyConfig;
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
                formula: "prefix_tuning (P = 30, MLP 800) + scaled_parallel_adapter (m = 512, s = 4; XSum setting)",
            },
            MamConfig,
            Mam::new
        ),
        method_entry!(
            MethodInfo {
                name: "mam_glue",
                family: "mixtures",
                paper: "He et al. 2022, Towards a Unified View (MAM adapter, GLUE setting of exps/run_glue.sh)",
                sites: &[Site::AttentionKv, Site::FfnOutput],
                form: Form::Parallel,
                scale: ScaleKind::Fixed,
                formula: "prefix_tuning (P = 16, MLP 800) + scaled_parallel_adapter (m = 16, s = 2)",
            },
            MamConfig,
            |c, d, dev| Mam::named("mam_glue", c, d, dev),
            defaults = MamConfig::glue()
        ),
        method_entry!(
            MethodInfo {
                name: "pcg",
                family: "mixtures",
                paper: "Luo et al. 2022, Few-Shot Table-to-Text Generation with Prefix-Controlled Generator (PCG)",
                sites: &[Site::AttentionKv, Site::FfnOutput],
                form: Form::Parallel,
                scale: ScaleKind::Fixed,
                formula: "encoder only: prefix_tuning (P = 30, MLP 512) + scaled_parallel_adapter (m = d/2, s = 4); + the content planner (BiLSTM-CRF, counted with the head; data-to-text only)",
            },
            PcgConfig,
            Pcg::new
        ),
        method_entry!(
            MethodInfo {
                name: "unipelt",
                family: "mixtures",
                paper: "Mao et al. 2022, UniPELT: A Unified Framework for Parameter-Efficient Language Model Tuning",
                sites: &[Site::Query, Site::Value, Site::AttentionKv, Site::FfnOutput],
                form: Form::Sequential,
                scale: ScaleKind::Gated,
                formula: "prefix_tuning + lora + pfeiffer adapter at m = d/16 (24 at d = 384, 48 at d = 768) + (2L + L·t)(d + 1) gates (t LoRA targets)",
            },
            UniPeltConfig,
            UniPelt::new
        ),
        method_entry!(
            MethodInfo {
                name: "polytropon",
                family: "mixtures",
                paper: "Ponti et al. 2022, Combining Modular Skills in Multitask Learning (Polytropon)",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "Σ_targets L·(skills·r·(d_in + d_out) + T·skills); T trained routing rows (sources: one per task; target: 1)",
            },
            PolyConfig,
            |c, d, dev| Poly::named("polytropon", c, d, dev)
        ),
        method_entry!(
            MethodInfo {
                name: "poly_s",
                family: "mixtures",
                paper: "Caccia et al. 2023, Multi-Head Adapter Routing for Cross-Task Generalization (Poly-S / MHR)",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "Σ_targets L·(skills·r·(d_in + d_out) + T·splits·skills), splits = 4; T as polytropon",
            },
            PolyConfig,
            |c, d, dev| Poly::named("poly_s", c, d, dev),
            defaults = PolyConfig::poly_s()
        ),
        method_entry!(
            MethodInfo {
                name: "poly_mu",
                family: "mixtures",
                paper: "Caccia et al. 2023, Multi-Head Adapter Routing for Cross-Task Generalization (Poly-μ)",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "sources: as polytropon; target: Σ_targets L·r·(d_in + d_out) (the averaged module)",
            },
            PolyConfig,
            |c, d, dev| Poly::named("poly_mu", c, d, dev),
            defaults = PolyConfig::poly_mu()
        ),
        method_entry!(
            MethodInfo {
                name: "attempt",
                family: "mixtures",
                paper: "Asai et al. 2022, ATTEMPT: Parameter-Efficient Multi-task Tuning via Attentional Mixtures of Soft Prompts",
                sites: &[Site::Embeddings],
                form: Form::Concatenated,
                scale: ScaleKind::Gated,
                formula: "sources: S·P·d; target: P·d + 2·d·k + 2·d (k = 100)",
            },
            AttemptConfig,
            Attempt::new
        ),
    ]
}

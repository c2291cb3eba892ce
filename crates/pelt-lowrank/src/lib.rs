//! pelt-lowrank: low-rank, Kronecker, rescaling and rotation updates of the backbone's projections, and
//! the adapters built from them.
//!
//! - LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022):
//!   W x + (α/r)·B A x on chosen projections (query and value by default), A Kaiming-uniform, B zero, so
//!   ΔW = 0 at init; mergeable into W for inference.
//!   `init: gaussian | pissa` (PiSSA, Meng et al. 2024) and `rslora` (α/√r, Kalajdzievski 2023) as in peft.
//! - DoRA (Liu et al., ICML 2024): m ⊙ (W + s·B A)/‖W + s·B A‖ per output row, m trained, the norm
//!   detached; mergeable.
//! - AdaLoRA (Zhang et al., ICLR 2023): SVD-form updates P Λ Q whose rank budget falls over a cubic
//!   schedule, triplets masked by smoothed sensitivity; mergeable.
//! - VeRA (Kopiczko et al., ICLR 2024): Λ_b B Λ_d A x with one frozen random pair shared by all layers.
//! - LoHa and LoKr (LyCORIS, as peft ships them): Hadamard and Kronecker products of low-rank factors.
//! - (IA)³ (Liu et al., NeurIPS 2022): learned rescaling of keys, values and FFN activations; and OFT
//!   (Qiu et al., NeurIPS 2023): block-diagonal Cayley rotations of a projection's input. Both merge.
//! - KronA (Edalati et al. 2022): W x + s·(A ⊗ B) x, mergeable; KronA^B_res: a Kronecker adapter beside
//!   the FFN with a learned scale.
//! - Compacter and Compacter++ (Karimi Mahabadi et al., NeurIPS 2021): adapters with PHM projections
//!   Σ A_i ⊗ B_i, shared slow A_i and rank-1 fast B_i.
//! - KAdaptation (He et al., AAAI 2023): ΔW = s·Σ A_i ⊗ u_i v_iᵀ on query and value, A_i shared across
//!   layers; mergeable.

#![warn(missing_docs)]

pub mod adalora;
pub mod compacter;
pub mod config;
pub mod dora;
pub mod ia3;
pub mod kadaptation;
pub mod kron;
pub mod krona;
pub mod lora;
pub mod lycoris;
pub mod oft;
pub mod vera;

pub use adalora::Adalora;
pub use compacter::Compacter;
pub use dora::Dora;
pub use ia3::Ia3;
pub use kadaptation::KAdaptation;
pub use krona::{Krona, KronaRes};
pub use lora::{Lora, LoraModule};
pub use lycoris::{Loha, Lokr};
pub use oft::Oft;
pub use vera::Vera;

use config::{
    AdaloraConfig, CompacterConfig, Ia3Config, KAdaptationConfig, KronaConfig, KronaResConfig, LohaConfig, LokrConfig,
    LoraConfig, OftConfig, VeraConfig,
};
use pelt_core::{method_entry, Form, MethodEntry, MethodInfo, ScaleKind, Site};

/// Registry entries of this crate.
pub fn methods() -> Vec<MethodEntry> {
    vec![
        method_entry!(
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
        ),
        method_entry!(
            MethodInfo {
                name: "dora",
                family: "low-rank",
                paper: "Liu et al. 2024, DoRA: Weight-Decomposed Low-Rank Adaptation",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "L·Σ_targets (r·(d_in + d_out) + d_out) (LoRA's pairs and a magnitude per output)",
            },
            LoraConfig,
            Dora::new
        ),
        method_entry!(
            MethodInfo {
                name: "vera",
                family: "low-rank",
                paper: "Kopiczko et al. 2024, VeRA: Vector-based Random Matrix Adaptation",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "L·Σ_targets (r + d_out) (shared frozen A, B; r = 256)",
            },
            VeraConfig,
            Vera::new
        ),
        method_entry!(
            MethodInfo {
                name: "loha",
                family: "low-rank",
                paper: "Hyeon-Woo et al. 2022, FedPara (LoHa, as in LyCORIS / peft)",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "L·Σ_targets 2r·(d_in + d_out)",
            },
            LohaConfig,
            Loha::new
        ),
        method_entry!(
            MethodInfo {
                name: "lokr",
                family: "low-rank",
                paper: "Yeh et al. 2024, Navigating Text-To-Image Customization (LoKr, as in LyCORIS / peft)",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "L·Σ_targets (l·m + [k·n or r(k + n)]) (d_out = l·k, d_in = m·n)",
            },
            LokrConfig,
            Lokr::new
        ),
        method_entry!(
            MethodInfo {
                name: "ia3",
                family: "low-rank",
                paper: "Liu et al. 2022, Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning ((IA)³)",
                sites: &[Site::Key, Site::Value, Site::FfnIntermediate],
                form: Form::Reparameterized,
                scale: ScaleKind::Learned,
                formula: "L·(2d + d_ff) (keys, values, FFN activations)",
            },
            Ia3Config,
            Ia3::new
        ),
        method_entry!(
            MethodInfo {
                name: "oft",
                family: "low-rank",
                paper: "Qiu et al. 2023, Controlling Text-to-Image Diffusion by Orthogonal Finetuning (OFT)",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "L·Σ_targets (d_in/b)·b(b − 1)/2 (b = 32)",
            },
            OftConfig,
            Oft::new
        ),
        method_entry!(
            MethodInfo {
                name: "adalora",
                family: "low-rank",
                paper: "Zhang et al. 2023, Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning (AdaLoRA)",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "L·Σ_targets r₀·(d_in + d_out + 1) (r₀ = 12 triplets, pruned to 8 on average)",
            },
            AdaloraConfig,
            Adalora::new
        ),
        method_entry!(
            MethodInfo {
                name: "krona",
                family: "low-rank",
                paper: "Edalati et al. 2022, KronA: Parameter Efficient Tuning with Kronecker Adapter",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "L·Σ_targets (a₁a₂ + (d_out/a₁)(d_in/a₂)) (A: a₁ × a₂)",
            },
            KronaConfig,
            Krona::new
        ),
        method_entry!(
            MethodInfo {
                name: "krona_res",
                family: "low-rank",
                paper: "Edalati et al. 2022, KronA (KronA^B_res, beside the FFN)",
                sites: &[Site::FfnOutput],
                form: Form::Parallel,
                scale: ScaleKind::Learned,
                formula: "L·(a₁a₂ + (d/a₁)(d/a₂) + 1) (A ⊗ B and one learned s_res per layer)",
            },
            KronaResConfig,
            KronaRes::new
        ),
        method_entry!(
            MethodInfo {
                name: "compacter",
                family: "low-rank",
                paper: "Karimi Mahabadi et al. 2021, Compacter",
                sites: &[Site::AttentionOutput, Site::FfnOutput, Site::LayerNorm],
                form: Form::Sequential,
                scale: ScaleKind::Fixed,
                formula: "n³ + 2L·(2r(d + k) + d + k) + L·4d (n terms, rank r, bottleneck k = d/32: 12 at d = 384, 24 at d = 768)",
            },
            CompacterConfig,
            Compacter::plain
        ),
        method_entry!(
            MethodInfo {
                name: "compacter_pp",
                family: "low-rank",
                paper: "Karimi Mahabadi et al. 2021, Compacter++",
                sites: &[Site::FfnOutput, Site::LayerNorm],
                form: Form::Sequential,
                scale: ScaleKind::Fixed,
                formula: "n³ + L·(2r(d + k) + d + k) + L·4d (k = d/32)",
            },
            CompacterConfig,
            Compacter::plus_plus,
            defaults = CompacterConfig::plus_plus()
        ),
        method_entry!(
            MethodInfo {
                name: "kadaptation",
                family: "low-rank",
                paper: "He et al. 2023, Parameter-efficient Model Adaptation for Vision Transformers",
                sites: &[Site::Query, Site::Value],
                form: Form::Reparameterized,
                scale: ScaleKind::Fixed,
                formula: "t·2n² + L·Σ_targets r·(d_in + d_out) (t targets, n terms)",
            },
            KAdaptationConfig,
            KAdaptation::new
        ),
    ]
}

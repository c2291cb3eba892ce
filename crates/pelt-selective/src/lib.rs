//! pelt-selective: methods that train a chosen subset of the backbone's own parameters.
//!
//! - full fine-tuning: every backbone weight (the upper baseline);
//! - head only (linear probe): nothing in the backbone, only the task head;
//! - BitFit (Ben Zaken et al., "BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based
//!   Masked Language-models", ACL 2022): bias terms only;
//! - LN-tuning (Qi et al., "Parameter-Efficient Tuning on Layer Normalization for Pre-trained Language
//!   Models", 2022): LayerNorm gains and biases only;
//! - RAFT (Fang et al., "Transformers with Learnable Activation Functions", 2022): the FFN activation
//!   becomes a rational function per layer, initialised to fit GELU, and only its coefficients train
//!   (the one method here with variables of its own).
//!
//! Selective methods create no variables of their own: they name backbone variables through
//! [`Method::trains_backbone`], so their trainable count is read off the backbone's store.

#![warn(missing_docs)]

pub mod config;
pub mod raft;

pub use raft::Raft;

use config::{BitFitConfig, LnTuningConfig, NoConfig, RaftConfig};
use pelt_core::{
    is_layer_norm, method_entry, Attachment, BackboneDims, Form, Identity, Method, MethodEntry, MethodInfo, ScaleKind,
    Site,
};
use tch::{nn::VarStore, Device};

/// A method that unfreezes the backbone variables matching a predicate.
#[derive(Debug)]
pub struct Selective {
    name: &'static str,
    vs: VarStore,
    select: fn(&str) -> bool,
    formula: fn(&BackboneDims) -> i64,
}

impl Attachment for Selective {}

impl Method for Selective {
    fn name(&self) -> &str {
        self.name
    }
    fn var_store(&self) -> &VarStore {
        &self.vs
    }
    fn trains_backbone(&self, name: &str) -> bool {
        (self.select)(name)
    }
    fn identity(&self) -> Identity {
        // Nothing is added: the output is the backbone's until training moves its weights.
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        (self.formula)(dims)
    }
}

/// Is `name` a bias term (linear biases and LayerNorm biases, as in BitFit's reference code)?
pub fn is_bias(name: &str) -> bool {
    name.ends_with(".bias")
}

/// LN-tuning's count: the layers' LayerNorms (BERT, ViT: two of gain and bias per layer; T5: RMS gains,
/// two per encoder and three per decoder layer) and the one outside them — BERT's embeddings' (unless
/// left out), a ViT's final one, or a T5's two final norms.
pub fn ln_tuning_params(d: &BackboneDims, embeddings: bool) -> i64 {
    let outside = if d.is_t5() || d.image.is_some() || embeddings { 2 * d.hidden } else { 0 };
    d.layer_norm_params() + outside
}

/// LN-tuning: the backbone's LayerNorm gains and biases train.
#[derive(Debug)]
pub struct LnTuning {
    vs: VarStore,
    config: LnTuningConfig,
}

impl Attachment for LnTuning {}

impl Method for LnTuning {
    fn name(&self) -> &str {
        "ln_tuning"
    }
    fn var_store(&self) -> &VarStore {
        &self.vs
    }
    fn trains_backbone(&self, name: &str) -> bool {
        is_layer_norm(name) && (self.config.embeddings || !name.starts_with("embeddings."))
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        ln_tuning_params(dims, self.config.embeddings)
    }
}

/// LN-tuning.
pub fn ln_tuning(config: LnTuningConfig, _: &BackboneDims, device: Device) -> pelt_core::Result<LnTuning> {
    Ok(LnTuning { vs: VarStore::new(device), config })
}

/// Parameters of a BERT-family encoder or a ViT from its sizes (embeddings with their LayerNorm, or a
/// ViT's class token, positions, patch projection and final LayerNorm; then per layer: q, k, v,
/// attention output, two FFN projections, two LayerNorms; an MPNet's one relative-position table,
/// buckets × heads). The pooler is not loaded.
pub fn bert_params(d: &BackboneDims) -> i64 {
    if d.is_t5() {
        return t5_params(d);
    }
    let (h, i, l) = (d.hidden, d.intermediate, d.layers);
    let layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h;
    let outside = match d.image {
        // Class token, positions, patch projection (c·p²·d + d), final LayerNorm.
        Some(img) => h + d.positions * h + (img.channels * img.patch * img.patch * h + h) + 2 * h,
        None => (d.vocab + d.positions + d.type_vocab) * h + 2 * h,
    };
    outside + l * layer + d.position_buckets * d.heads
}

/// Parameters of a T5 / mT5 from its sizes: the shared embedding (and an untied LM head), per layer the
/// self-attention's q, k, v (d → heads·d_kv) and o, a decoder layer's cross-attention likewise, the FFN
/// (two input projections when gated) and its RMS norms (gains only: two per encoder layer, three per
/// decoder layer), each stack's relative position table (buckets × heads) and final norm. No biases.
pub fn t5_params(d: &BackboneDims) -> i64 {
    let (h, a, f, v) = (d.hidden, d.attention_width(), d.intermediate, d.vocab);
    let (enc, dec) = (d.layers - d.decoder_layers, d.decoder_layers);
    let attention = 4 * h * a;
    let ffn = if d.gated_ffn { 3 * h * f } else { 2 * h * f };
    let head = if d.untied_head { v * h } else { 0 };
    let stacks = [enc, dec].iter().filter(|&&n| n > 0).count() as i64;
    v * h
        + head
        + enc * (attention + ffn + 2 * h)
        + dec * (2 * attention + ffn + 3 * h)
        + stacks * (d.position_buckets * d.heads + h)
}

/// BitFit's count on a BERT encoder: per layer q, k, v, attention-output, intermediate and output
/// biases plus two LayerNorm biases, and the embedding LayerNorm bias (on a ViT: the patch projection's
/// and the final LayerNorm's biases instead).
pub fn bitfit_params(d: &BackboneDims) -> i64 {
    let (h, i) = (d.hidden, d.intermediate);
    let outside = if d.image.is_some() { 2 * h } else { h };
    outside + d.layers * (4 * h + i + h + 2 * h)
}

fn selective(
    name: &'static str,
    select: fn(&str) -> bool,
    formula: fn(&BackboneDims) -> i64,
    device: Device,
) -> Selective {
    Selective { name, vs: VarStore::new(device), select, formula }
}

/// Full fine-tuning.
pub fn full(_: NoConfig, _: &BackboneDims, device: Device) -> pelt_core::Result<Selective> {
    Ok(selective("full", |_| true, bert_params, device))
}

/// Head only (linear probe).
pub fn head_only(_: NoConfig, _: &BackboneDims, device: Device) -> pelt_core::Result<Selective> {
    Ok(selective("head_only", |_| false, |_| 0, device))
}

/// BitFit.
pub fn bitfit(_: BitFitConfig, dims: &BackboneDims, device: Device) -> pelt_core::Result<Selective> {
    if dims.is_t5() {
        return Err(pelt_core::PeltError::Config(pelt_core::ConfigError::new(
            "",
            format!("BitFit trains bias terms, and a {} has none", dims.arch),
        )));
    }
    Ok(selective("bitfit", is_bias, bitfit_params, device))
}

/// Registry entries of this crate.
pub fn methods() -> Vec<MethodEntry> {
    vec![
        method_entry!(
            MethodInfo {
                name: "full",
                family: "selective",
                paper: "Devlin et al. 2019 (full fine-tuning baseline)",
                sites: &[Site::All, Site::Head],
                form: Form::Selective,
                scale: ScaleKind::None,
                formula: "all backbone parameters",
            },
            NoConfig,
            full
        ),
        method_entry!(
            MethodInfo {
                name: "head_only",
                family: "selective",
                paper: "linear probe baseline",
                sites: &[Site::Head],
                form: Form::Selective,
                scale: ScaleKind::None,
                formula: "0 (task head only)",
            },
            NoConfig,
            head_only
        ),
        method_entry!(
            MethodInfo {
                name: "bitfit",
                family: "selective",
                paper: "Ben Zaken et al. 2022, BitFit",
                sites: &[Site::Bias],
                form: Form::Selective,
                scale: ScaleKind::None,
                formula: "d + L(7d + d_ff) (every bias, LayerNorm biases included)",
            },
            BitFitConfig,
            bitfit
        ),
        method_entry!(
            MethodInfo {
                name: "ln_tuning",
                family: "selective",
                paper: "Qi et al. 2022, Parameter-Efficient Tuning on Layer Normalization",
                sites: &[Site::LayerNorm],
                form: Form::Selective,
                scale: ScaleKind::None,
                formula: "4Ld + 2d (every LayerNorm's gain and bias, the embeddings' included)",
            },
            LnTuningConfig,
            ln_tuning
        ),
        method_entry!(
            MethodInfo {
                name: "raft",
                family: "selective",
                paper: "Fang et al. 2022, Transformers with Learnable Activation Functions",
                sites: &[Site::Activation],
                form: Form::Selective,
                scale: ScaleKind::None,
                formula: "10L (rational 5/4 coefficients per layer)",
            },
            RaftConfig,
            Raft::new
        ),
    ]
}

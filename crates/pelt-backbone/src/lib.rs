//! pelt-backbone: pretrained transformers with named attachment sites.
//!
//! Each model is one file with blocks named like the checkpoint's tensors, so HF `model.safetensors`
//! files load by name, and each block calls the [`pelt_core::Attachment`] hooks at its sites.

#![warn(missing_docs)]

pub mod bert;
pub mod bert2bert;
pub mod head;
pub mod loader;
pub mod seq2seq;
pub mod t5;
pub mod vit;

pub use bert::{Bert, BertConfig};
pub use bert2bert::Bert2Bert;
pub use head::{ClassificationHead, Pooling};
pub use seq2seq::{Generation, Seq2Seq};
pub use t5::{T5Config, T5};
pub use vit::{Vit, VitConfig};

use pelt_core::{Backbone, BackboneDims, PeltError, Result};
use std::path::Path;

/// The `model_type` of an HF model folder's `config.json`.
fn model_type(dir: &Path) -> Result<String> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).map_err(|source| PeltError::Io { path: path.display().to_string(), source })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| PeltError::Weights { path: path.display().to_string(), message: format!("not JSON: {e}") })?;
    Ok(value.get("model_type").and_then(|v| v.as_str()).unwrap_or("bert").to_owned())
}

/// The sizes of the model in an HF folder, from its `config.json` (ViT, T5 / mT5 or a BERT-family
/// encoder).
pub fn dims_of(dir: &Path) -> Result<BackboneDims> {
    let config = dir.join("config.json");
    Ok(match model_type(dir)?.as_str() {
        "vit" => VitConfig::from_file(&config)?.dims(),
        "t5" | "mt5" => T5Config::from_file(&config)?.dims(),
        _ => BertConfig::from_file(&config)?.dims(),
    })
}

/// The sizes of an encoder-decoder for summarization: a T5 / mT5 folder as it is, or a BERT-family
/// folder warm-started into a BERT2BERT (`warm_start`), whose decoder doubles the layers.
pub fn seq2seq_dims(dir: &Path, warm_start: bool) -> Result<BackboneDims> {
    let mut dims = dims_of(dir)?;
    if !dims.is_t5() && warm_start && dims.image.is_none() {
        dims.decoder_layers = dims.layers;
        dims.layers *= 2;
    }
    Ok(dims)
}

/// Loads an HF model folder as the backbone its `config.json` names: ViT, T5 / mT5 (its encoder as the
/// [`Backbone`]; [`T5::load`] gives the whole encoder-decoder), or a BERT-family encoder.
pub fn load(dir: &Path, device: tch::Device) -> Result<Box<dyn Backbone>> {
    Ok(match model_type(dir)?.as_str() {
        "vit" => Box::new(Vit::load(dir, device)?),
        "t5" | "mt5" => Box::new(T5::load(dir, device)?),
        _ => Box::new(Bert::load(dir, device)?),
    })
}

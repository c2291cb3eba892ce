//! What a method needs to know about the backbone it attaches to.

use crate::{method::Attachment, Result, Site};
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Tensor};

/// Sizes of a transformer backbone; methods size their modules from these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneDims {
    /// Architecture family, e.g. `bert`.
    pub arch: String,
    /// Hidden size d.
    pub hidden: i64,
    /// Number of transformer layers L.
    pub layers: i64,
    /// Attention heads per layer.
    pub heads: i64,
    /// FFN inner size.
    pub intermediate: i64,
    /// Vocabulary size.
    pub vocab: i64,
    /// Learned absolute positions.
    pub positions: i64,
    /// Segment (token type) vocabulary.
    pub type_vocab: i64,
    /// Image input of vision backbones (`None` for text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageDims>,
    /// How many of the `layers` are decoder layers (the last ones) with a cross-attention over the
    /// encoder's output; 0 for encoders.
    #[serde(default)]
    pub decoder_layers: i64,
    /// Width of the attention's query, key and value projections (heads × head size) when it differs
    /// from `hidden` (mT5-small: 6 heads × 64 on d = 512); 0 means `hidden`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attention_dim: i64,
    /// The FFN activation (`gelu`, `gelu_new`, `relu`); in a gated FFN (T5 v1.1, mT5) the gate's.
    #[serde(default)]
    pub activation: String,
    /// Whether the FFN is gated: act(x W₀) ⊙ (x W₁), two input projections (T5 v1.1, mT5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gated_ffn: bool,
    /// Relative position buckets per attention head, held by each stack's first layer (T5) or once by
    /// the encoder (MPNet, beside its absolute positions); 0 for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub position_buckets: i64,
    /// Whether an encoder-decoder has an LM head of its own rather than the tied embedding matrix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untied_head: bool,
    /// Width of the word embeddings when it differs from `hidden` (ELECTRA projects them up); 0 means
    /// `hidden`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub embedding_dim: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The image a vision backbone takes: square, `size` pixels a side, cut into `patch`-pixel patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageDims {
    /// Height and width in pixels.
    pub size: i64,
    /// Patch height and width in pixels.
    pub patch: i64,
    /// Colour channels.
    pub channels: i64,
}

impl ImageDims {
    /// Patches per image.
    pub fn patches(&self) -> i64 {
        (self.size / self.patch).pow(2)
    }
}

impl BackboneDims {
    /// Width of the word embeddings (see [`BackboneDims::embedding_dim`]).
    pub fn embedding_width(&self) -> i64 {
        if self.embedding_dim > 0 {
            self.embedding_dim
        } else {
            self.hidden
        }
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> i64 {
        self.attention_width() / self.heads
    }

    /// Width of the attention's query, key and value projections (heads × head size).
    pub fn attention_width(&self) -> i64 {
        if self.attention_dim > 0 {
            self.attention_dim
        } else {
            self.hidden
        }
    }

    /// Whether `layer` has `site`: every layer has the self-attention and FFN sites, only decoder
    /// layers have the cross-attention's.
    pub fn has_site(&self, layer: i64, site: Site) -> bool {
        !site.is_cross() || layer >= self.layers - self.decoder_layers
    }

    /// Parameters of the LayerNorms inside the layers (what [`is_layer_layer_norm`] selects): BERT and
    /// ViT layers hold two LayerNorms of gain and bias; T5's RMS norms have a gain only, two per encoder
    /// layer and three per decoder layer (before self-attention, cross-attention and the FFN).
    pub fn layer_norm_params(&self) -> i64 {
        if self.is_t5() {
            (2 * (self.layers - self.decoder_layers) + 3 * self.decoder_layers) * self.hidden
        } else {
            self.layers * 4 * self.hidden
        }
    }

    /// Whether the backbone is a T5 / mT5 (RMS norms without biases, no biases anywhere).
    pub fn is_t5(&self) -> bool {
        matches!(self.arch.as_str(), "t5" | "mt5")
    }

    /// Number of layers that have `site`.
    pub fn layers_with(&self, site: Site) -> i64 {
        if site.is_cross() {
            self.decoder_layers
        } else {
            self.layers
        }
    }
}

/// A batch of inputs: tokens padded to a common length, or images for vision backbones.
#[derive(Debug)]
pub struct Inputs {
    /// Token ids, (batch, len), int64 (empty for images).
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding, (batch, len), int64 (empty for images).
    pub attention_mask: Tensor,
    /// Segment ids, (batch, len), int64 (empty for images).
    pub token_type_ids: Tensor,
    /// Images, (batch, channels, height, width) float, normalised as the backbone expects.
    pub pixels: Option<Tensor>,
}

impl Inputs {
    /// A batch of token inputs.
    pub fn text(input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Inputs {
        Inputs { input_ids, attention_mask, token_type_ids, pixels: None }
    }

    /// A batch of images.
    pub fn images(pixels: Tensor) -> Inputs {
        let none = || Tensor::zeros([0], (tch::Kind::Int64, pixels.device()));
        Inputs { input_ids: none(), attention_mask: none(), token_type_ids: none(), pixels: Some(pixels) }
    }

    /// Moves the batch to `device`.
    pub fn to_device(&self, device: tch::Device) -> Inputs {
        Inputs {
            input_ids: self.input_ids.to_device(device),
            attention_mask: self.attention_mask.to_device(device),
            token_type_ids: self.token_type_ids.to_device(device),
            pixels: self.pixels.as_ref().map(|p| p.to_device(device)),
        }
    }
}

/// The output of a backbone forward pass.
#[derive(Debug)]
pub struct Encoded {
    /// Final hidden states, (batch, len', d); len' includes any positions a method prepended.
    pub hidden: Tensor,
    /// Mask matching `hidden`'s positions, (batch, len'), int64.
    pub mask: Tensor,
    /// Where the positions a method inserted sit: (first index, count); BERT prepends them (0, P),
    /// ViT puts them after the class token (1, P), as VPT does.
    pub inserted: (i64, i64),
}

impl Encoded {
    /// Hidden states of the input's own positions, without any a method inserted.
    pub fn own_positions(&self) -> Tensor {
        let (start, count) = self.inserted;
        if count == 0 {
            return self.hidden.shallow_clone();
        }
        let len = self.hidden.size()[1];
        Tensor::cat(&[self.hidden.narrow(1, 0, start), self.hidden.narrow(1, start + count, len - start - count)], 1)
    }
}

/// A frozen pretrained network exposing sites to an [`Attachment`].
pub trait Backbone {
    /// Sizes of the network.
    fn dims(&self) -> &BackboneDims;
    /// The store holding the pretrained weights; names mirror the checkpoint.
    fn var_store(&self) -> &VarStore;
    /// Runs the network with `method` attached at its sites.
    fn forward(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded;
    /// Adds a weight update ΔW (out × in) to the projection at `site` of `layer` (merging a
    /// reparameterised method into the frozen weights).
    fn merge_projection(&mut self, layer: usize, site: Site, delta_w: &Tensor) -> Result<()>;

    /// The weight (out × in) of the projection at `site` of `layer`, sharing its storage with the
    /// backbone, so an evaluation can merge a method into it and restore it after
    /// ([`crate::EvalMerge`]); `None` where the backbone does not expose it (the default), and
    /// evaluation then runs with the method attached.
    fn projection_weight(&self, _layer: usize, _site: Site) -> Option<Tensor> {
        None
    }

    /// The bias (out) of the projection at `site` of `layer`, sharing its storage (a zero buffer on a
    /// bias-free T5); `None` where the backbone does not expose it (the default).
    fn projection_bias(&self, _layer: usize, _site: Site) -> Option<Tensor> {
        None
    }

    /// Adds Δb to the bias of the projection at `site` of `layer` (merging a method that rescales a
    /// projection's output, (IA)³); through [`Backbone::projection_bias`]'s shared storage.
    fn merge_projection_bias(&mut self, layer: usize, site: Site, delta_b: &Tensor) -> Result<()> {
        let mut bias = self
            .projection_bias(layer, site)
            .ok_or_else(|| crate::PeltError::Shape(format!("no bias exposed for `{site}` of layer {layer}")))?;
        if bias.size() != delta_b.size() {
            return Err(crate::PeltError::Shape(format!(
                "Δb for {site} of layer {layer} is {:?}, the bias is {:?}",
                delta_b.size(),
                bias.size()
            )));
        }
        let _ = tch::no_grad(|| bias.f_add_(delta_b))?;
        Ok(())
    }

    /// The output the conformance suite checks, which must pass through every layer a method attaches
    /// to: an encoder's [`Backbone::forward`]; an encoder-decoder's decoder states, with the inputs
    /// teacher-forced as decoder inputs over the encoder's output.
    fn probe(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded {
        self.forward(inputs, method, train)
    }
}

/// Is the backbone variable `name` a LayerNorm gain or bias? (HF names: `LayerNorm` in BERT,
/// `layernorm_*` in ViT, `layer_norm` in T5.)
pub fn is_layer_norm(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("layernorm") || lower.contains("layer_norm")
}

/// Is `name` a LayerNorm inside the transformer layers (not the embeddings' or a stack's final one)?
/// Adapter methods that train LayerNorms (Houlsby, Compacter, SparseAdapter) train these. Layers are
/// `encoder.layer.N` (BERT, ViT), `decoder.layer.N` (a warm-started BERT decoder) or `{encoder,decoder}.
/// block.N` (T5).
pub fn is_layer_layer_norm(name: &str) -> bool {
    ["encoder.layer.", "decoder.layer.", "encoder.block.", "decoder.block."].iter().any(|p| name.starts_with(p))
        && is_layer_norm(name)
}

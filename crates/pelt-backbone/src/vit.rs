//! Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"): the image cut into
//! patches, each linearly embedded, a class token in front, learned positions, and a pre-norm encoder
//! (LayerNorm before attention and before the FFN, residuals around both), a final LayerNorm.
//!
//! Variable names mirror Hugging Face's `ViTModel` (`encoder.layer.0.attention.attention.query.weight`;
//! a `vit.` prefix from `ViTForImageClassification` is dropped on load), so an HF ViT folder loads by
//! name. Sites are the BERT encoder's: query/key/value and both FFN projections call
//! [`Attachment::projection`], the attention and FFN sublayers call [`Attachment::sublayer`] with their
//! (normalised) input before the residual, attention takes [`Attachment::prefix`] positions and
//! [`Attachment::activation`] can replace the FFN activation. Prompt positions from
//! [`Attachment::prompt`] go right after the class token, where VPT puts them, so the class token stays
//! at position 0; [`Attachment::layer_prompt`] replaces them at the input of later layers (VPT-deep).

use crate::{
    bert::{activate, merge_linear, splice, LayerNorm, Linear, SelfAttention},
    loader,
};
use pelt_core::{
    hooked_sublayer, Attachment, Backbone, BackboneDims, Dropout, Encoded, ImageDims, Inputs, PeltError, Result, Site,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// `config.json` of an HF ViT, with Hugging Face's defaults (ViT-Base/16 at 224 pixels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VitConfig {
    /// `vit`.
    pub model_type: String,
    /// Hidden size d.
    pub hidden_size: i64,
    /// Number of layers.
    pub num_hidden_layers: i64,
    /// Attention heads.
    pub num_attention_heads: i64,
    /// FFN inner size.
    pub intermediate_size: i64,
    /// FFN activation: `gelu`, `gelu_new` / `gelu_pytorch_tanh`, or `relu`.
    pub hidden_act: String,
    /// Dropout on hidden states.
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    pub attention_probs_dropout_prob: f64,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Image height and width in pixels.
    pub image_size: i64,
    /// Patch height and width in pixels.
    pub patch_size: i64,
    /// Colour channels.
    pub num_channels: i64,
    /// Whether query, key and value have biases (pelt always gives them one; `false` is refused).
    pub qkv_bias: bool,
    /// Std of the truncated-normal initialiser (random models only).
    pub initializer_range: f64,
}

impl Default for VitConfig {
    fn default() -> Self {
        VitConfig {
            model_type: "vit".into(),
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            layer_norm_eps: 1e-12,
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            qkv_bias: true,
            initializer_range: 0.02,
        }
    }
}

impl VitConfig {
    /// A tiny config for tests: 2 layers, d = 16, 2 heads, 8 × 8 grey images in 4 × 4 patches.
    pub fn tiny() -> VitConfig {
        VitConfig {
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 32,
            image_size: 8,
            patch_size: 4,
            num_channels: 1,
            ..VitConfig::default()
        }
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<VitConfig> {
        let err = |message: String| PeltError::Weights { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path)
            .map_err(|source| PeltError::Io { path: path.display().to_string(), source })?;
        let config: VitConfig = serde_json::from_str(&text).map_err(|e| err(format!("not a ViT config.json: {e}")))?;
        config.check().map_err(err)?;
        Ok(config)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.model_type != "vit" {
            return Err(format!("model_type `{}` is not `vit`", self.model_type));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.patch_size < 1 || self.image_size % self.patch_size != 0 {
            return Err(format!("image_size {} is not a multiple of patch_size {}", self.image_size, self.patch_size));
        }
        if !self.qkv_bias {
            return Err("qkv_bias false is not supported".into());
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu") {
            return Err(format!("hidden_act `{}` is not supported (gelu, gelu_new, relu)", self.hidden_act));
        }
        Ok(())
    }

    /// Patches per image.
    pub fn patches(&self) -> i64 {
        (self.image_size / self.patch_size).pow(2)
    }

    /// The sizes methods are built for: `positions` counts the class token and every patch.
    pub fn dims(&self) -> BackboneDims {
        BackboneDims {
            arch: self.model_type.clone(),
            hidden: self.hidden_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            vocab: 0,
            positions: self.patches() + 1,
            type_vocab: 0,
            image: Some(ImageDims { size: self.image_size, patch: self.patch_size, channels: self.num_channels }),
            decoder_layers: 0,
            activation: self.hidden_act.clone(),
            ..BackboneDims::default()
        }
    }
}

/// One pre-norm layer.
#[derive(Debug)]
struct VitLayer {
    norm_before: LayerNorm,
    attention: SelfAttention,
    attention_output: Linear,
    norm_after: LayerNorm,
    intermediate: Linear,
    output: Linear,
}

/// A ViT encoder with its weights in a [`nn::VarStore`].
#[derive(Debug)]
pub struct Vit {
    vs: nn::VarStore,
    config: VitConfig,
    dims: BackboneDims,
    cls: Tensor,
    positions: Tensor,
    patch_weight: Tensor,
    patch_bias: Tensor,
    layers: Vec<VitLayer>,
    final_norm: LayerNorm,
}

impl Vit {
    /// Builds a randomly initialised model from `seed` (normal(0, initializer_range) weights, zero
    /// biases, LayerNorms at (1, 0)).
    pub fn random(config: &VitConfig, seed: i64, device: Device) -> Vit {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (c, d, std) = (config, config.hidden_size, config.initializer_range);
        let init = nn::Init::Randn { mean: 0.0, stdev: std };
        let e = &root / "embeddings";
        let cls = e.var("cls_token", &[1, 1, d], init);
        let positions = e.var("position_embeddings", &[1, c.patches() + 1, d], init);
        let proj = &e / "patch_embeddings" / "projection";
        let patch_weight = proj.var("weight", &[d, c.num_channels, c.patch_size, c.patch_size], init);
        let patch_bias = proj.var("bias", &[d], nn::Init::Const(0.0));
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let p = &root / "encoder" / "layer" / i;
                let a = &p / "attention";
                let s = &a / "attention";
                VitLayer {
                    norm_before: LayerNorm::new(&p / "layernorm_before", d, c.layer_norm_eps),
                    attention: SelfAttention {
                        query: Linear::new(&s / "query", d, d, std),
                        key: Linear::new(&s / "key", d, d, std),
                        value: Linear::new(&s / "value", d, d, std),
                        heads: c.num_attention_heads,
                        attn_dropout: c.attention_probs_dropout_prob,
                    },
                    attention_output: Linear::new(&a / "output" / "dense", d, d, std),
                    norm_after: LayerNorm::new(&p / "layernorm_after", d, c.layer_norm_eps),
                    intermediate: Linear::new(&p / "intermediate" / "dense", d, c.intermediate_size, std),
                    output: Linear::new(&p / "output" / "dense", c.intermediate_size, d, std),
                }
            })
            .collect();
        let final_norm = LayerNorm::new(&root / "layernorm", d, c.layer_norm_eps);
        Vit { dims: c.dims(), config: c.clone(), vs, cls, positions, patch_weight, patch_bias, layers, final_norm }
    }

    /// Loads a Hugging Face ViT folder: `config.json` + `model.safetensors`.
    pub fn load(dir: &Path, device: Device) -> Result<Vit> {
        let config = VitConfig::from_file(&dir.join("config.json"))?;
        let model = Vit::random(&config, 0, device);
        loader::load_safetensors(&model.vs, &dir.join("model.safetensors"))?;
        Ok(model)
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    /// Patch embeddings with the class token in front and positions added, (batch, 1 + N, d).
    fn embed(&self, pixels: &Tensor, train: bool) -> Tensor {
        let c = &self.config;
        let shape = pixels.size();
        assert!(
            shape.len() == 4 && shape[1] == c.num_channels && shape[2] == c.image_size && shape[3] == c.image_size,
            "ViT expects images (batch, {}, {}, {}), got {shape:?}",
            c.num_channels,
            c.image_size,
            c.image_size
        );
        let b = shape[0];
        let patches = pixels
            .conv2d(&self.patch_weight, Some(&self.patch_bias), [c.patch_size, c.patch_size], [0, 0], [1, 1], 1)
            .flatten(2, 3)
            .transpose(1, 2);
        let cls = self.cls.expand([b, 1, c.hidden_size], false);
        (Tensor::cat(&[cls, patches], 1) + &self.positions).drop_out(c.hidden_dropout_prob, train)
    }

    fn layer(&self, i: usize, h: &Tensor, keep: &Tensor, m: &dyn Attachment, train: bool) -> Tensor {
        let l = &self.layers[i];
        let drop = self.config.hidden_dropout_prob;
        let x = l.norm_before.forward(h);
        let ctx = l.attention.context(&x, keep, i, m, train);
        let a = l.attention_output.forward(&ctx, i, Site::AttentionOutput, m, train).drop_out(drop, train);
        let a = hooked_sublayer(m, (i, Site::AttentionOutput), &x, a, &|a| a + h, train);
        let h = a + h;
        let x = l.norm_after.forward(&h);
        let inner = l.intermediate.forward(&x, i, Site::FfnIntermediate, m, train);
        let act = m.activation(i, &inner, train).unwrap_or_else(|| activate(&self.config.hidden_act, &inner));
        let f = l.output.forward(&act, i, Site::FfnOutput, m, train).drop_out(drop, train);
        let f = hooked_sublayer(m, (i, Site::FfnOutput), &x, f, &|f| f + &h, train);
        f + h
    }

    fn projection_mut(&mut self, layer: usize, site: Site) -> Option<&mut Linear> {
        let l = self.layers.get_mut(layer)?;
        Some(match site {
            Site::Query => &mut l.attention.query,
            Site::Key => &mut l.attention.key,
            Site::Value => &mut l.attention.value,
            Site::AttentionOutput => &mut l.attention_output,
            Site::FfnIntermediate => &mut l.intermediate,
            Site::FfnOutput => &mut l.output,
            _ => return None,
        })
    }
}

impl Backbone for Vit {
    fn dims(&self) -> &BackboneDims {
        &self.dims
    }

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    fn forward(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded {
        let pixels = inputs.pixels.as_ref().expect("a ViT takes images: build its inputs with Inputs::images");
        let mut h = self.embed(pixels, train);
        let (b, device) = (h.size()[0], h.device());
        let ones = |n: i64| Tensor::ones([b, n], (Kind::Int64, device));
        let mut p = 0;
        if let Some(prompt) = method.prompt(&h, &ones(h.size()[1]), train) {
            p = prompt.size()[1];
            h = splice(&h, 1, 0, &prompt);
        }
        let mask = ones(h.size()[1]);
        let keep = mask.ne(0);
        method.begin_stack(&keep, false);
        for i in 0..self.layers.len() {
            if i > 0 && p > 0 {
                if let Some(next) = method.layer_prompt(i, b, train) {
                    h = splice(&h, 1, p, &next);
                }
            }
            h = self.layer(i, &h, &keep, method, train);
        }
        Encoded { hidden: self.final_norm.forward(&h), mask, inserted: (1, p) }
    }

    fn merge_projection(&mut self, layer: usize, site: Site, delta_w: &Tensor) -> Result<()> {
        merge_linear(self.projection_mut(layer, site), layer, site, delta_w)
    }

    fn projection_weight(&self, layer: usize, site: Site) -> Option<Tensor> {
        Some(self.linear(layer, site)?.weight.shallow_clone())
    }

    fn projection_bias(&self, layer: usize, site: Site) -> Option<Tensor> {
        Some(self.linear(layer, site)?.bias.shallow_clone())
    }
}

impl Vit {
    /// The projection at `site` of `layer`.
    fn linear(&self, layer: usize, site: Site) -> Option<&Linear> {
        let l = self.layers.get(layer)?;
        let linear = match site {
            Site::Query => &l.attention.query,
            Site::Key => &l.attention.key,
            Site::Value => &l.attention.value,
            Site::AttentionOutput => &l.attention_output,
            Site::FfnIntermediate => &l.intermediate,
            Site::FfnOutput => &l.output,
            _ => return None,
        };
        Some(linear)
    }
}

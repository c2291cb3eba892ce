//! Prompt-method configurations.

use pelt_core::{BackboneDims, ConfigError, MethodConfig};
use serde::{Deserialize, Serialize};

/// How prompt tuning's soft tokens start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptInit {
    /// Embeddings of vocabulary tokens drawn with the seed (Lester et al.'s best init), normalised by
    /// the embeddings' LayerNorm.
    Vocab,
    /// Uniform in ±0.5 (Lester et al.'s random init).
    Random,
}

/// Where prompt tuning's soft tokens enter the backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptPlacement {
    /// After the embedding block (its LayerNorm), with no position embedding; the real tokens keep
    /// their positions. pelt's form since prompt tuning landed.
    #[default]
    EmbeddingOutput,
    /// In front of the word embeddings, before positions, segments and the LayerNorm, as Hugging Face
    /// peft feeds them (`inputs_embeds`): the soft tokens take positions 0..P and the real tokens
    /// move up by P. The form `pelt export --format peft` can write. Text backbones only.
    InputEmbeddings,
}

impl PromptPlacement {
    fn is_default(&self) -> bool {
        *self == PromptPlacement::EmbeddingOutput
    }
}

/// Prompt tuning settings (Lester et al. 2021).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptConfig {
    /// Soft tokens P prepended to the input.
    pub length: i64,
    /// How they start.
    pub init: PromptInit,
    /// Where they enter. Left out of the serialised config at its default, so that runs made before
    /// the option existed keep their config hashes (and records).
    #[serde(skip_serializing_if = "PromptPlacement::is_default")]
    pub placement: PromptPlacement,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig { length: 20, init: PromptInit::Vocab, placement: PromptPlacement::EmbeddingOutput }
    }
}

fn check_length(field: &str, p: i64, dims: &BackboneDims) -> Result<(), ConfigError> {
    let most = dims.positions / 2;
    if p < 1 || p > most {
        return Err(ConfigError::new(field, format!("must be in 1..={most} (half the backbone's positions), got {p}")));
    }
    Ok(())
}

impl MethodConfig for PromptConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        if self.placement == PromptPlacement::InputEmbeddings && dims.image.is_some() {
            return Err(ConfigError::new(
                "placement",
                "`input_embeddings` needs a text backbone with word embeddings (on a ViT, use vpt)",
            ));
        }
        check_length("length", self.length, dims)
    }
}

/// How a prefix starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixInit {
    /// Embeddings N(0, 1) as nn.Embedding and nn.Linear's init for the MLP: Li & Liang's standalone
    /// prefix tuning, peft's and He et al.'s code. Also read as `li_liang`.
    #[default]
    #[serde(alias = "li_liang")]
    Random,
    /// UniPELT's code (morningmoni/UniPELT): the prefix embedding and its MLP live inside `BertEncoder`,
    /// so `BertModel.init_weights()` draws the embedding and both MLP weights from N(0, 0.02) and zeroes
    /// the biases. The starting keys and values are far smaller than under `random`.
    ReferenceUnipelt,
    /// Li & Liang's low-data init: the MLP is first fitted (Adam, lr 1e-4, 500 steps, MSE) to the keys
    /// and values the frozen backbone computes for P real vocabulary tokens drawn with the seed. BERT-style
    /// text encoders only.
    Words,
}

impl PrefixInit {
    fn is_random(&self) -> bool {
        *self == PrefixInit::Random
    }
}

/// Prefix tuning settings (Li & Liang 2021): P key/value positions in every layer's attention,
/// produced during training by an MLP from P embeddings (the reparameterisation), folded into plain
/// keys and values for inference. Defaults: P = 10 (UniPELT's), hidden size 512 (Li & Liang's), random
/// init (Li & Liang's; UniPELT sets `reference_unipelt` for its own prefix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrefixConfig {
    /// Prefix positions P per layer.
    pub length: i64,
    /// Hidden width of the reparameterisation MLP.
    pub mid_dim: i64,
    /// How the prefix starts. Left out of the serialised config when random, so that runs made before
    /// the option existed keep their config hashes (and records).
    #[serde(skip_serializing_if = "PrefixInit::is_random")]
    pub init: PrefixInit,
}

impl Default for PrefixConfig {
    fn default() -> Self {
        PrefixConfig { length: 10, mid_dim: 512, init: PrefixInit::Random }
    }
}

impl MethodConfig for PrefixConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_length("length", self.length, dims)?;
        if !(1..=8192).contains(&self.mid_dim) {
            return Err(ConfigError::new("mid_dim", format!("must be in 1..=8192, got {}", self.mid_dim)));
        }
        // The init runs P vocabulary tokens through the encoder and reads its key and value weights by
        // their BERT names: an image, encoder-decoder or T5 backbone has neither.
        let text_encoder = dims.image.is_none() && dims.decoder_layers == 0 && !dims.is_t5() && dims.vocab > 0;
        if self.init == PrefixInit::Words && !text_encoder {
            return Err(ConfigError::new(
                "init",
                format!("`words` needs a BERT-style text encoder, and this backbone is `{}`", dims.arch),
            ));
        }
        Ok(())
    }
}

/// Deep prompt settings (P-tuning v2, Liu et al. 2022): per-layer key/value positions trained
/// directly, without reparameterisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepPromptConfig {
    /// Prompt positions P per layer.
    pub length: i64,
    /// Std of their normal init.
    pub init_std: f64,
}

impl Default for DeepPromptConfig {
    fn default() -> Self {
        DeepPromptConfig { length: 10, init_std: 0.02 }
    }
}

impl MethodConfig for DeepPromptConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_length("length", self.length, dims)?;
        pelt_core::config::check_positive("init_std", self.init_std)
    }
}

/// IDPG settings: the task prefix (prefix tuning's config; P = 10, MLP width 512), P_x generated
/// positions per input (5) and the generator's bottleneck width (64).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdpgConfig {
    /// The task prefix and the shared reparameterisation MLP.
    pub prefix: PrefixConfig,
    /// Positions generated from each input, P_x.
    pub input_length: i64,
    /// Hidden width of the generator.
    pub generator_dim: i64,
}

impl Default for IdpgConfig {
    fn default() -> Self {
        IdpgConfig { prefix: PrefixConfig::default(), input_length: 5, generator_dim: 64 }
    }
}

impl MethodConfig for IdpgConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        self.prefix.validate(dims).map_err(|e| ConfigError::new(format!("prefix.{}", e.field), e.message))?;
        check_length("input_length", self.input_length, dims)?;
        pelt_core::config::check_bottleneck("generator_dim", self.generator_dim, dims)
    }
}

/// VPT settings (Jia et al. 2022): P prompt tokens (10 by default; the paper searches 1–200) and the
/// dropout on them during training (0, the reference code's default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VptConfig {
    /// Prompt tokens P (per layer for VPT-deep).
    pub length: i64,
    /// Dropout on the prompt tokens during training.
    pub dropout: f64,
}

impl Default for VptConfig {
    fn default() -> Self {
        VptConfig { length: 10, dropout: 0.0 }
    }
}

impl MethodConfig for VptConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_length("length", self.length, dims)?;
        pelt_core::config::check_dropout("dropout", self.dropout)
    }
}

//! Adapter configurations.

use pelt_core::{
    config::{check_dropout, check_positive, check_sublayers, check_width},
    BackboneDims, ConfigError, MethodConfig, Site, Width,
};
use serde::{Deserialize, Serialize};

/// Nonlinearity inside a bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// GELU (Houlsby's reference code).
    Gelu,
    /// ReLU (Pfeiffer, He et al.).
    Relu,
    /// tanh.
    Tanh,
}

impl Activation {
    /// Applies the nonlinearity.
    pub fn apply(self, x: &tch::Tensor) -> tch::Tensor {
        match self {
            Activation::Gelu => x.gelu("none"),
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
        }
    }
}

/// Where a bottleneck's dropout acts during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropoutAt {
    /// On the adapter's input, before the down-projection (pelt's form since adapters landed).
    #[default]
    Input,
    /// After the nonlinearity, inside the bottleneck (He et al.'s `Adapter_Layer`, which MAM uses).
    Bottleneck,
}

impl DropoutAt {
    fn is_input(&self) -> bool {
        *self == DropoutAt::Input
    }
}

/// A bottleneck's dropout: its probability and where it acts. A bare probability means [`DropoutAt::Input`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AdapterDropout {
    /// The probability.
    pub p: f64,
    /// Where it acts.
    pub at: DropoutAt,
}

impl From<f64> for AdapterDropout {
    fn from(p: f64) -> AdapterDropout {
        AdapterDropout { p, at: DropoutAt::Input }
    }
}

/// What a sequential adapter reads and where its output goes back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The sublayer's output h, before the residual connection (Houlsby et al. 2019's adapter-bert):
    /// out = LN(h + f(h) + x) on a post-norm backbone.
    #[default]
    Output,
    /// The residual sum after the sublayer's own LayerNorm, with h as the adapter's residual (Pfeiffer et
    /// al. 2021; the adapters library's `SeqBnConfig`: original_ln_before, residual_before_ln,
    /// original_ln_after): out = LN(f(LN(h + x)) + h + x); on a pre-norm backbone (ViT, T5) the sum is
    /// not normed: out = f(h + x) + h + x.
    Residual,
}

impl Placement {
    fn is_output(&self) -> bool {
        *self == Placement::Output
    }
}

/// Sequential bottleneck adapter settings (Houlsby, Pfeiffer). `Default` is Houlsby's, following the
/// paper's reference code (adapter-bert): bottleneck 64, GELU, truncated-normal init with std 1e-3,
/// adapters after attention and after the FFN, LayerNorms trained; [`BottleneckConfig::pfeiffer`]
/// gives Pfeiffer's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BottleneckConfig {
    /// Bottleneck size m: an integer, or `d/r` for reduction factor r (see [`Width`]).
    pub bottleneck: Width,
    /// Nonlinearity between the projections.
    pub activation: Activation,
    /// Std of the (±2σ truncated) normal init of both projections; small values make the adapter a
    /// near-identity at init.
    pub init_std: f64,
    /// Sublayers that get an adapter: `attention_output`, `ffn_output`.
    pub sites: Vec<Site>,
    /// Also train the layers' LayerNorm gains and biases (the paper does).
    pub train_layer_norm: bool,
    /// Dropout on the adapter's input during training.
    pub dropout: f64,
    /// What the adapter reads: `output` (Houlsby) or `residual` (Pfeiffer). Left out of the resolved
    /// config when `output`, so that records made before the field existed keep their hashes.
    #[serde(skip_serializing_if = "Placement::is_output")]
    pub placement: Placement,
}

impl Default for BottleneckConfig {
    fn default() -> Self {
        BottleneckConfig {
            bottleneck: Width::Fixed(64),
            activation: Activation::Gelu,
            init_std: 1e-3,
            sites: vec![Site::AttentionOutput, Site::FfnOutput],
            train_layer_norm: true,
            dropout: 0.0,
            placement: Placement::Output,
        }
    }
}

impl BottleneckConfig {
    /// Pfeiffer et al. 2021 (AdapterFusion's adapter, the `pfeiffer` / `SeqBnConfig` of the adapters
    /// library): one adapter after the FFN only, reading the LayerNormed residual sum
    /// ([`Placement::Residual`]), ReLU, reduction factor 16 — 48 at BERT-base's d = 768, kept absolute
    /// here so that budgets compare across backbones (`bottleneck: d/16` gives the factor) — weights
    /// drawn with std 0.02 (the library's "bert" init; truncated at ±2σ like every pelt bottleneck) and
    /// the LayerNorms frozen.
    pub fn pfeiffer() -> BottleneckConfig {
        BottleneckConfig {
            bottleneck: Width::Fixed(48),
            activation: Activation::Relu,
            init_std: 0.02,
            sites: vec![Site::FfnOutput],
            train_layer_norm: false,
            placement: Placement::Residual,
            ..BottleneckConfig::default()
        }
    }
}

impl MethodConfig for BottleneckConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_width("bottleneck", self.bottleneck, dims)?;
        if !(self.init_std >= 0.0 && self.init_std.is_finite()) {
            return Err(ConfigError::new(
                "init_std",
                format!("must be a finite non-negative number, got {}", self.init_std),
            ));
        }
        check_sublayers("sites", &self.sites, dims)?;
        check_dropout("dropout", self.dropout)
    }
}

/// Parallel adapter settings (He et al. 2022, "Towards a Unified View"): Δ = s·up(f(down(x))) from the
/// sublayer's input x, added to its output. `Default` is the plain parallel adapter (s = 1);
/// [`ParallelConfig::scaled`] is the scaled parallel adapter (s = 4, the paper's choice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParallelConfig {
    /// Bottleneck size m: an integer, or `d/r` for reduction factor r (see [`Width`]).
    pub bottleneck: Width,
    /// The fixed scale s of Δ.
    pub scale: f64,
    /// Nonlinearity between the projections.
    pub activation: Activation,
    /// Sublayers the adapter runs beside: `ffn_output` (the paper's best placement), `attention_output`.
    pub sites: Vec<Site>,
    /// Dropout during training, where `dropout_at` says.
    pub dropout: f64,
    /// Where the dropout acts: `input` or `bottleneck` (after the nonlinearity, as He et al.'s code). Left
    /// out of the serialised config at `input`, so that older records keep their hashes.
    #[serde(skip_serializing_if = "DropoutAt::is_input")]
    pub dropout_at: DropoutAt,
}

impl Default for ParallelConfig {
    fn default() -> Self {
        ParallelConfig {
            bottleneck: Width::Fixed(64),
            scale: 1.0,
            activation: Activation::Relu,
            sites: vec![Site::FfnOutput],
            dropout: 0.0,
            dropout_at: DropoutAt::Input,
        }
    }
}

impl ParallelConfig {
    /// The scaled parallel adapter: s = 4.
    pub fn scaled() -> ParallelConfig {
        ParallelConfig { scale: 4.0, ..ParallelConfig::default() }
    }
}

impl MethodConfig for ParallelConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_width("bottleneck", self.bottleneck, dims)?;
        check_positive("scale", self.scale)?;
        check_sublayers("sites", &self.sites, dims)?;
        check_dropout("dropout", self.dropout)
    }
}

/// AdapterBias settings (Fu et al. 2022).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdapterBiasConfig {
    /// Sublayers whose output gets the token-dependent shift (the paper: after the FFN).
    pub sites: Vec<Site>,
    /// Also train the layers' LayerNorm gains and biases (the reference code does).
    pub train_layer_norm: bool,
}

impl Default for AdapterBiasConfig {
    fn default() -> Self {
        AdapterBiasConfig { sites: vec![Site::FfnOutput], train_layer_norm: true }
    }
}

impl MethodConfig for AdapterBiasConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        check_sublayers("sites", &self.sites, dims)
    }
}

/// How SparseAdapter chooses the weights to prune at initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pruning {
    /// SNIP (Lee et al. 2019): keep the weights with the largest |w · ∂L/∂w|, the gradient summed over
    /// `snip_examples` training examples at init.
    Snip,
    /// Keep a uniformly random subset.
    Random,
    /// Keep the weights of largest |w| at init.
    Magnitude,
}

/// SparseAdapter settings (He et al. 2022): a Houlsby-placed adapter whose projection weights are
/// pruned at init to `sparsity`, the pruned entries held at zero through training. `Default` prunes a
/// bottleneck of 64 by half with SNIP; [`SparseConfig::large`] is the Large-Sparse setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SparseConfig {
    /// The adapter being pruned.
    pub adapter: BottleneckConfig,
    /// Fraction of each projection weight matrix pruned, in [0, 1).
    pub sparsity: f64,
    /// How pruned weights are chosen.
    pub pruning: Pruning,
    /// Training examples SNIP scores on (fewer when the training set is smaller). 320 by default: the
    /// reference code's few-shot pruning set (10 × 32 examples of train, dropout off, the gradients of
    /// all its batches summed before |w · g| is taken).
    pub snip_examples: usize,
}

impl Default for SparseConfig {
    fn default() -> Self {
        SparseConfig { adapter: BottleneckConfig::default(), sparsity: 0.5, pruning: Pruning::Snip, snip_examples: 320 }
    }
}

impl SparseConfig {
    /// Large-Sparse: the bottleneck doubled (128) and half of it pruned, so about as many weights are
    /// kept as in a dense adapter of 64.
    pub fn large() -> SparseConfig {
        SparseConfig {
            adapter: BottleneckConfig { bottleneck: Width::Fixed(128), ..BottleneckConfig::default() },
            ..Default::default()
        }
    }
}

impl MethodConfig for SparseConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        self.adapter.validate(dims).map_err(|e| ConfigError::new(format!("adapter.{}", e.field), e.message))?;
        if !(0.0..1.0).contains(&self.sparsity) {
            return Err(ConfigError::new("sparsity", format!("must be in [0, 1), got {}", self.sparsity)));
        }
        if self.pruning == Pruning::Snip && self.snip_examples == 0 {
            return Err(ConfigError::new("snip_examples", "SNIP needs at least one training example, got 0"));
        }
        Ok(())
    }
}

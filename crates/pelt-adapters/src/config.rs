//! Adapter configurations.

use pelt_core::{BackboneDims, ConfigError, MethodConfig, Site};
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

/// Houlsby adapter settings; defaults follow the paper's reference code (adapter-bert): bottleneck
/// 64, GELU, truncated-normal init with std 1e-3, adapters after attention and after the FFN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HoulsbyConfig {
    /// Bottleneck size m.
    pub bottleneck: i64,
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
}

impl Default for HoulsbyConfig {
    fn default() -> Self {
        HoulsbyConfig {
            bottleneck: 64,
            activation: Activation::Gelu,
            init_std: 1e-3,
            sites: vec![Site::AttentionOutput, Site::FfnOutput],
            train_layer_norm: true,
            dropout: 0.0,
        }
    }
}

impl MethodConfig for HoulsbyConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        if self.bottleneck < 1 || self.bottleneck > 4 * dims.hidden {
            return Err(ConfigError::new(
                "bottleneck",
                format!("must be in 1..={}, got {}", 4 * dims.hidden, self.bottleneck),
            ));
        }
        if !(self.init_std >= 0.0 && self.init_std.is_finite()) {
            return Err(ConfigError::new(
                "init_std",
                format!("must be a finite non-negative number, got {}", self.init_std),
            ));
        }
        if self.sites.is_empty() {
            return Err(ConfigError::new("sites", "must name at least one of attention_output, ffn_output"));
        }
        if let Some(s) = self.sites.iter().find(|s| !matches!(s, Site::AttentionOutput | Site::FfnOutput)) {
            return Err(ConfigError::new(
                "sites",
                format!("`{s}` is not a sublayer output (attention_output, ffn_output)"),
            ));
        }
        pelt_core::config::check_unique_sites("sites", &self.sites, "site")?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError::new("dropout", format!("must be in [0, 1), got {}", self.dropout)));
        }
        Ok(())
    }
}

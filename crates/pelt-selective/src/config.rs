//! Configurations of the selective methods.

use pelt_core::{BackboneDims, ConfigError, MethodConfig};
use serde::{Deserialize, Serialize};

/// For methods without settings (full fine-tuning, head only): any key is refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

impl MethodConfig for NoConfig {
    fn validate(&self, _: &BackboneDims) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// BitFit trains every bias term; the paper's variant that trains only query and FFN-intermediate
/// biases is not offered yet, so the config has no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitFitConfig {}

impl MethodConfig for BitFitConfig {
    fn validate(&self, _: &BackboneDims) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// LN-tuning settings (Qi et al. 2022 tune every LayerNorm's gain and bias).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LnTuningConfig {
    /// Also tune the embeddings' LayerNorm, not only the transformer layers'.
    pub embeddings: bool,
}

impl Default for LnTuningConfig {
    fn default() -> Self {
        LnTuningConfig { embeddings: true }
    }
}

impl MethodConfig for LnTuningConfig {
    fn validate(&self, _: &BackboneDims) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// RAFT settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// The rational units start at a least-squares fit of GELU on [-fit_bound, fit_bound].
    pub fit_bound: f64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig { fit_bound: 5.0 }
    }
}

impl MethodConfig for RaftConfig {
    fn validate(&self, _: &BackboneDims) -> Result<(), ConfigError> {
        if !(self.fit_bound > 0.0 && self.fit_bound <= 100.0) {
            return Err(ConfigError::new("fit_bound", format!("must be in (0, 100], got {}", self.fit_bound)));
        }
        Ok(())
    }
}

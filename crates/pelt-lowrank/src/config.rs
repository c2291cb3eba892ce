//! Low-rank method configurations.

use pelt_core::{BackboneDims, ConfigError, MethodConfig, Site};
use serde::{Deserialize, Serialize};

/// LoRA settings; defaults follow the paper's GLUE setup for base models (r 8, α 16, query and value)
/// with the dropout of the reference implementation (loralib) at 0.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank r.
    pub r: i64,
    /// Scaling numerator α; the update is scaled by α/r.
    pub alpha: f64,
    /// Dropout on the LoRA branch's input during training.
    pub dropout: f64,
    /// Projections to adapt: any of query, key, value, attention_output, ffn_intermediate, ffn_output.
    pub targets: Vec<Site>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig { r: 8, alpha: 16.0, dropout: 0.1, targets: vec![Site::Query, Site::Value] }
    }
}

impl MethodConfig for LoraConfig {
    fn validate(&self, dims: &BackboneDims) -> Result<(), ConfigError> {
        if self.r < 1 || self.r > dims.hidden {
            return Err(ConfigError::new("r", format!("must be in 1..={}, got {}", dims.hidden, self.r)));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(ConfigError::new("alpha", format!("must be a positive number, got {}", self.alpha)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError::new("dropout", format!("must be in [0, 1), got {}", self.dropout)));
        }
        if self.targets.is_empty() {
            return Err(ConfigError::new("targets", "must name at least one projection"));
        }
        if let Some(s) = self.targets.iter().find(|s| !Site::PROJECTIONS.contains(s)) {
            return Err(ConfigError::new(
                "targets",
                format!(
                    "`{s}` is not a projection (query, key, value, attention_output, ffn_intermediate, ffn_output)"
                ),
            ));
        }
        pelt_core::config::check_unique_sites("targets", &self.targets, "projection")?;
        Ok(())
    }
}

/// (d_in, d_out) of a projection site.
pub fn projection_shape(site: Site, dims: &BackboneDims) -> (i64, i64) {
    match site {
        Site::FfnIntermediate => (dims.hidden, dims.intermediate),
        Site::FfnOutput => (dims.intermediate, dims.hidden),
        _ => (dims.hidden, dims.hidden),
    }
}

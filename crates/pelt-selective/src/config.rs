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

//! The MAM adapter: prefix tuning in attention, a scaled parallel adapter beside the FFN.

use pelt_adapters::{config::ParallelConfig, ParallelModule};
use pelt_core::{
    Attachment, Backbone, BackboneDims, ConfigError, Delta, Identity, Method, MethodConfig, Prefix, Result, Site,
};
use pelt_prompts::{config::PrefixConfig, PrefixModule};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

/// MAM settings: its two parts' own configs. Defaults follow He et al.'s MAM (prefix length 30,
/// adapter bottleneck 512 at s = 4), with the prefix MLP at pelt's prefix default width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MamConfig {
    /// The prefix in attention.
    pub prefix: PrefixConfig,
    /// The parallel adapter beside the FFN.
    pub adapter: ParallelConfig,
}

impl Default for MamConfig {
    fn default() -> Self {
        MamConfig {
            prefix: PrefixConfig { length: 30, ..PrefixConfig::default() },
            adapter: ParallelConfig { bottleneck: 512, ..ParallelConfig::scaled() },
        }
    }
}

impl MethodConfig for MamConfig {
    fn validate(&self, dims: &BackboneDims) -> std::result::Result<(), ConfigError> {
        let nested = |part: &str, e: ConfigError| ConfigError::new(format!("{part}.{}", e.field), e.message);
        self.prefix.validate(dims).map_err(|e| nested("prefix", e))?;
        self.adapter.validate(dims).map_err(|e| nested("adapter", e))
    }
}

/// Prefix tuning and a scaled parallel adapter in one store, each owning its sites.
#[derive(Debug)]
pub struct Mam {
    vs: nn::VarStore,
    prefix: PrefixModule,
    adapter: ParallelModule,
}

impl Mam {
    /// Builds both parts, under `prefix.` and `adapter.` of one store.
    pub fn new(config: MamConfig, dims: &BackboneDims, device: Device) -> Result<Mam> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let prefix = PrefixModule::new(&root / "prefix", config.prefix, dims);
        let adapter = ParallelModule::new(&(&root / "adapter"), config.adapter, dims);
        Ok(Mam { vs, prefix, adapter })
    }

    /// Folds the prefix's reparameterisation for inference.
    pub fn fold(&self) {
        self.prefix.fold();
    }
}

impl Attachment for Mam {
    fn prefix(&self, layer: usize, x: &Tensor, _train: bool) -> Option<Prefix> {
        Some(self.prefix.prefix(layer, x))
    }
    fn sublayer(&self, layer: usize, site: Site, x: &Tensor, _h: &Tensor, train: bool) -> Option<Delta> {
        self.adapter.delta(layer, site, x, train)
    }
}

impl Method for Mam {
    fn name(&self) -> &str {
        "mam"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        self.prefix.params() + self.adapter.params(dims)
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        self.prefix.init_from(backbone);
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        self.prefix.diagnostics()
    }
}

//! The MAM adapter: prefix tuning in attention, a scaled parallel adapter beside the FFN.

use pelt_adapters::{
    config::{DropoutAt, ParallelConfig},
    ParallelModule,
};
use pelt_core::{
    Attachment, Backbone, BackboneDims, ConfigError, Delta, Identity, Method, MethodConfig, Prefix, Result, Site, Width,
};
use pelt_prompts::{config::PrefixConfig, PrefixModule};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

/// MAM settings: its two parts' own configs. `Default` is He et al.'s XSum / BART-large setting
/// (prefix length 30, scaled parallel adapter m = 512 at s = 4); [`MamConfig::glue`] is their GLUE
/// setting (`exps/run_glue.sh`: prefix length 16, m = 16, s = 2), registered as `mam_glue`. Both
/// follow their code where the paper is silent: the prefix MLP 800 wide (`--mid_dim 800`) with
/// nn.Linear's init, the adapter's "lora" init (down Kaiming-uniform, up and biases zero) and the
/// model's dropout (0.1) after the ReLU inside the bottleneck (`Adapter_Layer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MamConfig {
    /// The prefix in attention.
    pub prefix: PrefixConfig,
    /// The parallel adapter beside the FFN.
    pub adapter: ParallelConfig,
}

impl MamConfig {
    fn with(length: i64, bottleneck: i64, scale: f64) -> MamConfig {
        MamConfig {
            prefix: PrefixConfig { length, mid_dim: 800, ..PrefixConfig::default() },
            adapter: ParallelConfig {
                bottleneck: Width::Fixed(bottleneck),
                scale,
                dropout: 0.1,
                dropout_at: DropoutAt::Bottleneck,
                ..ParallelConfig::default()
            },
        }
    }

    /// He et al.'s GLUE setting (RoBERTa-base): prefix length 16, m = 16, s = 2.
    pub fn glue() -> MamConfig {
        MamConfig::with(16, 16, 2.0)
    }
}

impl Default for MamConfig {
    fn default() -> Self {
        MamConfig::with(30, 512, 4.0)
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
    name: &'static str,
    vs: nn::VarStore,
    prefix: PrefixModule,
    adapter: ParallelModule,
}

impl Mam {
    /// Builds both parts, under `prefix.` and `adapter.` of one store (`mam`).
    pub fn new(config: MamConfig, dims: &BackboneDims, device: Device) -> Result<Mam> {
        Mam::named("mam", config, dims, device)
    }

    /// Builds both parts, registered under `name` (`mam`, `mam_glue`).
    pub fn named(name: &'static str, config: MamConfig, dims: &BackboneDims, device: Device) -> Result<Mam> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let prefix = PrefixModule::new(&root / "prefix", config.prefix, dims);
        let adapter = ParallelModule::new(&(&root / "adapter"), config.adapter, dims);
        Ok(Mam { name, vs, prefix, adapter })
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
        self.name
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

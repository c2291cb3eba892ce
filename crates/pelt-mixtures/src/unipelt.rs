//! UniPELT (Mao et al., "UniPELT: A Unified Framework for Parameter-Efficient Language Model Tuning",
//! ACL 2022): an adapter after the FFN, prefix tuning in attention and LoRA on query and value in every
//! layer, each scaled by its own gate computed from the hidden state, so that training decides per
//! layer and per token which sub-module to lean on.
//!
//! Gates are σ(w·x + c) per token and layer: LoRA's from the attention input (both targets share it),
//! the prefix's from the attention input too, scaling the attention probabilities of the prefix
//! positions, and the adapter's from the adapter's own input (Pfeiffer placement: the LayerNormed residual sum after the FFN). The gates' mean values over the
//! evaluation passes since the last training step (in a run: the final dev and test evaluations) are
//! reported as diagnostics (`gate_lora`, `gate_prefix`, `gate_adapter`), so a table
//! can show which part a task used.

use pelt_adapters::{
    config::{BottleneckConfig, Placement},
    sequential::{bottlenecks, Bottleneck, BottleneckInit},
};
use pelt_core::{
    Attachment, BackboneDims, ConfigError, Delta, Identity, Method, MethodConfig, Prefix, Result, Scale, Site,
    SiteTable,
};
use pelt_lowrank::{config::LoraConfig, LoraModule};
use pelt_prompts::{config::PrefixConfig, PrefixModule};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::{nn, Device, Kind, Tensor};

/// UniPELT settings: the parts' own configs. Defaults follow the paper's: prefix length 10, LoRA r 8
/// (α 16) on query and value, an adapter of bottleneck 48 after the FFN (ReLU, Pfeiffer's placement:
/// it reads the LayerNormed residual sum, and its gate is computed from that same input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UniPeltConfig {
    /// The prefix in attention.
    pub prefix: PrefixConfig,
    /// LoRA on the attention projections.
    pub lora: LoraConfig,
    /// The adapter after the FFN (`sites` must be `[ffn_output]`; LayerNorms stay frozen).
    pub adapter: BottleneckConfig,
}

impl Default for UniPeltConfig {
    fn default() -> Self {
        UniPeltConfig {
            prefix: PrefixConfig::default(),
            lora: LoraConfig::default(),
            adapter: BottleneckConfig { train_layer_norm: false, ..BottleneckConfig::pfeiffer() },
        }
    }
}

impl MethodConfig for UniPeltConfig {
    fn validate(&self, dims: &BackboneDims) -> std::result::Result<(), ConfigError> {
        let nested = |part: &str, e: ConfigError| ConfigError::new(format!("{part}.{}", e.field), e.message);
        self.prefix.validate(dims).map_err(|e| nested("prefix", e))?;
        self.lora.validate(dims).map_err(|e| nested("lora", e))?;
        self.adapter.validate(dims).map_err(|e| nested("adapter", e))?;
        if self.adapter.sites != [Site::FfnOutput] {
            return Err(ConfigError::new("adapter.sites", "UniPELT's adapter sits after the FFN: use [ffn_output]"));
        }
        if self.adapter.train_layer_norm {
            return Err(ConfigError::new("adapter.train_layer_norm", "UniPELT trains no LayerNorm: use false"));
        }
        if let Some(s) = self.lora.targets.iter().find(|s| !matches!(s, Site::Query | Site::Key | Site::Value)) {
            return Err(ConfigError::new("lora.targets", format!("`{s}`: UniPELT gates LoRA on query, key, value")));
        }
        Ok(())
    }
}

/// A scalar gate per token: σ(w·x + c).
#[derive(Debug)]
struct Gate {
    w: Tensor,
    c: Tensor,
}

impl Gate {
    fn new(p: nn::Path, d: i64) -> Gate {
        // nn.Linear's init, as the reference code's gate layers.
        let bound = 1.0 / (d as f64).sqrt();
        Gate {
            w: p.var("weight", &[1, d], nn::Init::Uniform { lo: -bound, up: bound }),
            c: p.var("bias", &[1], nn::Init::Uniform { lo: -bound, up: bound }),
        }
    }

    /// (batch, len, 1).
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w, Some(&self.c)).sigmoid()
    }
}

/// Means of the gates over the evaluation passes since the last training forward.
#[derive(Debug, Default)]
struct GateStats {
    sums: [f64; 3],
    counts: [f64; 3],
    /// A training forward happened since the last evaluation forward: the next one starts afresh.
    stale: bool,
}

/// Adapter, prefix and LoRA per layer, each gated.
#[derive(Debug)]
pub struct UniPelt {
    vs: nn::VarStore,
    config: UniPeltConfig,
    prefix: PrefixModule,
    lora: LoraModule,
    adapters: SiteTable<Bottleneck>,
    /// (lora, prefix, adapter) gates per layer.
    gates: Vec<[Gate; 3]>,
    stats: RefCell<GateStats>,
}

impl UniPelt {
    /// Builds the parts and the gates in one store.
    pub fn new(config: UniPeltConfig, dims: &BackboneDims, device: Device) -> Result<UniPelt> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let prefix = PrefixModule::new(&root / "prefix", config.prefix.clone(), dims);
        let lora = LoraModule::new(&(&root / "lora"), config.lora.clone(), dims);
        let a = &config.adapter;
        let adapters = bottlenecks(
            &(&root / "adapter"),
            dims,
            &a.sites,
            a.bottleneck,
            BottleneckInit::TruncatedNormal(a.init_std),
            a.activation,
            a.dropout,
        );
        let gates = (0..dims.layers)
            .map(|l| {
                let p = &root / "gate" / l;
                let d = dims.hidden;
                [Gate::new(&p / "lora", d), Gate::new(&p / "prefix", d), Gate::new(&p / "adapter", d)]
            })
            .collect();
        Ok(UniPelt { vs, config, prefix, lora, adapters, gates, stats: RefCell::new(GateStats::default()) })
    }

    /// Computes gate `which` of `layer` from `x`, recording its mean on evaluation passes.
    fn gate(&self, layer: usize, which: usize, x: &Tensor, train: bool) -> Tensor {
        let g = self.gates[layer][which].forward(x);
        let mut stats = self.stats.borrow_mut();
        if train {
            stats.stale = true;
        } else {
            if stats.stale {
                *stats = GateStats::default();
            }
            stats.sums[which] += g.sum(Kind::Float).double_value(&[]);
            stats.counts[which] += g.numel() as f64;
        }
        g
    }
}

impl UniPelt {
    /// The adapter's Δ on its input `a`, scaled by the adapter gate computed from `a`.
    fn gated_adapter(&self, layer: usize, site: Site, a: &Tensor, train: bool) -> Option<Delta> {
        let adapter = self.adapters.get(layer, site)?;
        let g = self.gate(layer, 2, a, train);
        Some(Delta { value: adapter.forward(a, train), scale: Scale::Tensor(g) })
    }
}

impl Attachment for UniPelt {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        let delta = self.lora.delta(layer, site, x, train)?;
        // Query and value read the same x, so one gate serves both; it is counted once, at the first.
        let first = self.config.lora.targets.first() == Some(&site);
        let g = if first { self.gate(layer, 0, x, train) } else { self.gates[layer][0].forward(x) };
        let value = match delta.scale {
            // LoRA folds α/r into B, so this is the usual case and costs no pass.
            Scale::Fixed(1.0) => delta.value,
            Scale::Fixed(s) => delta.value * s,
            Scale::Tensor(_) => delta.value,
        };
        Some(Delta { value, scale: Scale::Tensor(g) })
    }

    fn prefix(&self, layer: usize, x: &Tensor, train: bool) -> Option<Prefix> {
        let mut prefix = self.prefix.prefix(layer, x);
        prefix.gate = Some(self.gate(layer, 1, x, train).squeeze_dim(-1));
        Some(prefix)
    }

    fn sublayer(&self, layer: usize, site: Site, _x: &Tensor, h: &Tensor, train: bool) -> Option<Delta> {
        if site != Site::FfnOutput || self.config.adapter.placement != Placement::Output {
            return None;
        }
        self.gated_adapter(layer, site, h, train)
    }

    fn residual_sublayer(&self, layer: usize, site: Site, sum: &dyn Fn() -> Tensor, train: bool) -> Option<Delta> {
        if site != Site::FfnOutput || self.config.adapter.placement != Placement::Residual {
            return None;
        }
        self.gated_adapter(layer, site, &sum(), train)
    }
}

impl Method for UniPelt {
    fn name(&self) -> &str {
        "unipelt"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let (h, m) = (dims.hidden, self.config.adapter.bottleneck);
        let adapter = dims.layers * (2 * h * m + h + m);
        let gates = dims.layers * 3 * (h + 1);
        self.prefix.params() + self.lora.params(dims) + adapter + gates
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        let stats = self.stats.borrow();
        ["gate_lora", "gate_prefix", "gate_adapter"]
            .iter()
            .enumerate()
            .filter(|(i, _)| stats.counts[*i] > 0.0)
            .map(|(i, name)| (name.to_string(), stats.sums[i] / stats.counts[i]))
            .collect()
    }
}

//! UniPELT (Mao et al., "UniPELT: A Unified Framework for Parameter-Efficient Language Model Tuning",
//! ACL 2022): an adapter after the FFN, prefix tuning in attention and LoRA on query and value in every
//! layer, each scaled by its own gate computed from the hidden state, so that training decides per
//! layer and per token which sub-module to lean on.
//!
//! The gates follow the reference code (morningmoni/UniPELT): each is σ(w·x + c) averaged over the
//! sequence, one value per example, from the tensor its part reads — the attention input for the
//! prefix gate and for LoRA's (one gate per LoRA target, as each `LoRA_Linear` has its own), the
//! adapter's input (the LayerNormed residual sum after the FFN, Pfeiffer's placement) for the adapter
//! gate. The prefix gate scales the prefix keys and values; LoRA's gate replaces α/r; the adapter's
//! scales its output. By default the mean runs over real positions only (pelt's outputs must not
//! depend on padding); `gate_pooling: all_positions` averages every position of the batch, which with
//! the training setting `pad_to_max_len: true` is the reference's form (it pads every batch to 128 and
//! averages the padding in). In a decoder stack a gate may only
//! see the past, so there it is the running mean over positions ≤ t, one per token, and the prefix gate
//! scales the prefix positions' attention probabilities instead (per query). The gates' mean values
//! over the evaluation passes since the last training step (in a run: the final dev and test
//! evaluations) are reported as diagnostics (`gate_lora`, `gate_prefix`, `gate_adapter`), so a table can
//! show which part a task used.

use pelt_adapters::{
    config::{BottleneckConfig, Placement},
    sequential::{bottlenecks, Bottleneck, BottleneckInit},
};
use pelt_core::{
    Attachment, Backbone, BackboneDims, ConfigError, Delta, Identity, Method, MethodConfig, Prefix, Result, Scale,
    Site, SiteTable, Width,
};
use pelt_lowrank::{config::LoraConfig, LoraModule};
use pelt_prompts::{
    config::{PrefixConfig, PrefixInit},
    PrefixModule,
};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use tch::{nn, Device, Kind, Tensor};

/// How a gate's per-position values become one per example (encoder stacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatePooling {
    /// The mean over real tokens: the result does not depend on how a batch is padded.
    #[default]
    RealTokens,
    /// The mean over every position of the batch, padding included: the reference code's, exact when
    /// batches are padded to a fixed length as it pads them (training setting `pad_to_max_len`).
    AllPositions,
}

impl GatePooling {
    fn is_real_tokens(&self) -> bool {
        *self == GatePooling::RealTokens
    }
}

/// UniPELT settings: the parts' own configs. Defaults follow the reference code's: prefix length 10
/// (MLP width 512) drawn as `BertModel.init_weights()` draws it there (N(0, 0.02), zero biases:
/// `init: reference_unipelt`), LoRA r 8 on query and value without dropout (its α is unused: the gate
/// replaces α/r), an adapter of reduction factor 16 after the FFN (`d/16`: 48 at d = 768, 24 at
/// MiniLM's d = 384; ReLU, Pfeiffer's placement), gates pooled over real tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UniPeltConfig {
    /// The prefix in attention.
    pub prefix: PrefixConfig,
    /// LoRA on the attention projections.
    pub lora: LoraConfig,
    /// The adapter after the FFN (`sites` must be `[ffn_output]`; LayerNorms stay frozen).
    pub adapter: BottleneckConfig,
    /// How the gates pool over positions (see [`GatePooling`]); left out of the serialised config at
    /// `real_tokens`.
    #[serde(skip_serializing_if = "GatePooling::is_real_tokens")]
    pub gate_pooling: GatePooling,
}

impl Default for UniPeltConfig {
    fn default() -> Self {
        UniPeltConfig {
            prefix: PrefixConfig { init: PrefixInit::ReferenceUnipelt, ..PrefixConfig::default() },
            // The reference passes no LoRA dropout (0).
            lora: LoraConfig { dropout: 0.0, ..LoraConfig::default() },
            adapter: BottleneckConfig {
                bottleneck: Width::Reduction(16),
                train_layer_norm: false,
                ..BottleneckConfig::pfeiffer()
            },
            gate_pooling: GatePooling::RealTokens,
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

/// A scalar gate: σ(w·x + c) per position, pooled over the sequence by [`UniPelt::gate`].
#[derive(Debug)]
struct Gate {
    w: Tensor,
    c: Tensor,
}

impl Gate {
    fn new(p: nn::Path, d: i64) -> Gate {
        // BERT's init for every nn.Linear, which the reference code's gates get: N(0, 0.02), bias 0.
        Gate {
            w: p.var("weight", &[1, d], nn::Init::Randn { mean: 0.0, stdev: 0.02 }),
            c: p.var("bias", &[1], nn::Init::Const(0.0)),
        }
    }

    /// (batch, len, 1).
    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w, Some(&self.c)).sigmoid()
    }
}

/// Which part a gate scales (and which diagnostic its mean goes to).
#[derive(Debug, Clone, Copy)]
enum Part {
    Lora = 0,
    Prefix = 1,
    Adapter = 2,
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
    /// One gate per LoRA target, in the config's order.
    lora_gates: SiteTable<Gate>,
    /// The prefix gate and the adapter gate of each layer.
    gates: Vec<[Gate; 2]>,
    /// The positions the current stack's gates pool over (batch, len, 1) as floats — its real tokens,
    /// or every position under `gate_pooling: all_positions` — and whether it is causal.
    positions: RefCell<Option<(Tensor, bool)>>,
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
            a.bottleneck.resolve(dims.hidden),
            BottleneckInit::TruncatedNormal(a.init_std),
            a.activation,
            a.dropout,
        );
        let d = dims.hidden;
        let lora_gates =
            SiteTable::new(dims, &config.lora.targets, |l, site| Gate::new(&root / "gate" / l / site.as_str(), d));
        let gates = (0..dims.layers)
            .map(|l| {
                let p = &root / "gate" / l;
                [Gate::new(&p / "prefix", d), Gate::new(&p / "adapter", d)]
            })
            .collect();
        Ok(UniPelt {
            vs,
            config,
            prefix,
            lora,
            adapters,
            lora_gates,
            gates,
            positions: RefCell::new(None),
            stats: RefCell::new(GateStats::default()),
        })
    }

    /// `gate` on `x` (batch, len, d), pooled over the current stack's real positions: (batch, 1, 1) in an
    /// encoder, the running mean (batch, len, 1) in a decoder. Records its mean on evaluation passes.
    fn gate(&self, gate: &Gate, part: Part, x: &Tensor, train: bool) -> Tensor {
        let positions = self.positions.borrow();
        let (keep, causal) = positions.as_ref().expect("the backbone announces each stack (Attachment::begin_stack)");
        let g = gate.forward(x) * keep;
        let g = if *causal {
            g.cumsum(1, Kind::Float) / keep.cumsum(1, Kind::Float).clamp_min(1.0)
        } else {
            g.sum_dim_intlist([1].as_slice(), true, Kind::Float)
                / keep.sum_dim_intlist([1].as_slice(), true, Kind::Float).clamp_min(1.0)
        };
        let mut stats = self.stats.borrow_mut();
        if train {
            stats.stale = true;
        } else {
            if stats.stale {
                *stats = GateStats::default();
            }
            let i = part as usize;
            // Decoder gates count at real positions only; encoder gates once per example.
            if *causal {
                stats.sums[i] += (&g * keep).sum(Kind::Float).double_value(&[]);
                stats.counts[i] += keep.sum(Kind::Float).double_value(&[]);
            } else {
                stats.sums[i] += g.sum(Kind::Float).double_value(&[]);
                stats.counts[i] += g.numel() as f64;
            }
        }
        g
    }

    /// The adapter's Δ on its input `a`, scaled by the adapter gate computed from `a`.
    fn gated_adapter(&self, layer: usize, site: Site, a: &Tensor, train: bool) -> Option<Delta> {
        let adapter = self.adapters.get(layer, site)?;
        let g = self.gate(&self.gates[layer][1], Part::Adapter, a, train);
        Some(Delta { value: adapter.forward(a, train), scale: Scale::Tensor(g) })
    }
}

impl Attachment for UniPelt {
    /// Its decoder gates are running means over the positions so far.
    fn decodes_incrementally(&self) -> bool {
        false
    }

    fn begin_stack(&self, keep: &Tensor, causal: bool) {
        let keep = keep.to_kind(Kind::Float).unsqueeze(-1);
        let pooled = match self.config.gate_pooling {
            GatePooling::RealTokens => keep,
            GatePooling::AllPositions => keep.ones_like(),
        };
        *self.positions.borrow_mut() = Some((pooled, causal));
    }

    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        let gate = self.lora_gates.get(layer, site)?;
        // The gate replaces α/r, as in the reference's LoRA_Linear.
        let value = self.lora.product(layer, site, x, train, 1.0)?;
        Some(Delta { value, scale: Scale::Tensor(self.gate(gate, Part::Lora, x, train)) })
    }

    fn prefix(&self, layer: usize, x: &Tensor, train: bool) -> Option<Prefix> {
        let prefix = self.prefix.prefix(layer, x);
        let g = self.gate(&self.gates[layer][0], Part::Prefix, x, train);
        if self.positions.borrow().as_ref().is_some_and(|(_, causal)| *causal) {
            // One gate per query: it can only scale that query's prefix probabilities.
            return Some(Prefix { gate: Some(g.squeeze_dim(-1)), ..prefix });
        }
        // One gate per example scales its prefix keys and values (batch, heads, P, head_dim); out of
        // place, since the keys may be views of the MLP output every layer shares.
        let g = g.view([-1, 1, 1, 1]);
        Some(Prefix { keys: prefix.keys * &g, values: prefix.values * g, gate: None })
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
        let (h, m) = (dims.hidden, self.config.adapter.bottleneck.resolve(dims.hidden));
        let adapter = dims.layers * (2 * h * m + h + m);
        let gates =
            (2 * dims.layers + self.config.lora.targets.iter().map(|&s| dims.layers_with(s)).sum::<i64>()) * (h + 1);
        self.prefix.params() + self.lora.params(dims) + adapter + gates
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        self.prefix.init_from(backbone);
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        let stats = self.stats.borrow();
        ["gate_lora", "gate_prefix", "gate_adapter"]
            .iter()
            .enumerate()
            .filter(|(i, _)| stats.counts[*i] > 0.0)
            .map(|(i, name)| (name.to_string(), stats.sums[i] / stats.counts[i]))
            .chain(self.prefix.diagnostics())
            .collect()
    }
}

//! Prefix tuning (Li & Liang, "Prefix-Tuning: Optimizing Continuous Prompts for Generation", ACL 2021)
//! and deep prompts (Liu et al., "P-Tuning v2", ACL 2022): P extra key/value positions in the attention
//! of every layer, visible to every token.
//!
//! Prefix tuning trains them through a reparameterisation — P embeddings E through an MLP,
//! tanh(E W₁ᵀ + b₁) W₂ᵀ + b₂, gives every layer's keys and values at once — which
//! [`PrefixTuning::fold`] replaces by its output for inference, with identical results. Deep prompts
//! train the keys and values directly.

use crate::config::{DeepPromptConfig, PrefixConfig};
use pelt_core::{Attachment, BackboneDims, Identity, Method, Prefix, Result};
use std::cell::RefCell;
use tch::{nn, Device, Tensor};

/// Splits a (batch, P, L·2·d) block of per-example keys and values into layer `layer`'s
/// (batch, heads, P, d/heads) pair.
pub fn batched_layer_kv(all: &Tensor, layer: usize, dims: &BackboneDims) -> (Tensor, Tensor) {
    let (b, p, _) = all.size3().expect("(batch, P, L·2·d)");
    let hd = dims.head_dim();
    let kv = all.view([b, p, dims.layers, 2, dims.heads, hd]).select(2, layer as i64);
    let split = |i: i64| kv.select(2, i).permute([0, 2, 1, 3]);
    (split(0), split(1))
}

/// Splits a (P, L·2·d) block of keys and values into layer `layer`'s (batch, heads, P, d/heads) pair.
pub fn layer_kv(all: &Tensor, layer: usize, dims: &BackboneDims, batch: i64) -> Prefix {
    let p = all.size()[0];
    let hd = dims.head_dim();
    let kv = all.view([p, dims.layers, 2, dims.heads, hd]).select(1, layer as i64);
    let split = |i: i64| kv.select(1, i).permute([1, 0, 2]).unsqueeze(0).expand([batch, -1, -1, -1], false);
    Prefix { keys: split(0), values: split(1), gate: None }
}

/// The prefix and its reparameterisation, built under any path of a store (prefix tuning owns one;
/// mixtures build it beside their other parts).
#[derive(Debug)]
pub struct PrefixModule {
    config: PrefixConfig,
    dims: BackboneDims,
    embedding: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    /// Every layer's keys and values (P, L·2·d), computed at layer 0 of each forward pass and reused by
    /// the other layers, so the MLP runs once per pass.
    cache: RefCell<Option<Tensor>>,
    /// Set by [`PrefixModule::fold`]: the MLP's output, used instead of running it.
    folded: RefCell<Option<Tensor>>,
}

impl PrefixModule {
    /// Builds the prefix embeddings and the MLP under `root` (nn.Linear's init; embeddings N(0, 1) as
    /// nn.Embedding).
    pub fn new(root: nn::Path, config: PrefixConfig, dims: &BackboneDims) -> PrefixModule {
        let (d, m, out) = (dims.hidden, config.mid_dim, dims.layers * 2 * dims.attention_width());
        let linear = |name: &str, i: i64, o: i64| {
            let bound = 1.0 / (i as f64).sqrt();
            (
                root.var(&format!("{name}_weight"), &[o, i], nn::Init::Uniform { lo: -bound, up: bound }),
                root.var(&format!("{name}_bias"), &[o], nn::Init::Uniform { lo: -bound, up: bound }),
            )
        };
        let embedding = root.var("embedding", &[config.length, d], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let (w1, b1) = linear("mlp_in", d, m);
        let (w2, b2) = linear("mlp_out", m, out);
        PrefixModule {
            config,
            dims: dims.clone(),
            embedding,
            w1,
            b1,
            w2,
            b2,
            cache: RefCell::new(None),
            folded: RefCell::new(None),
        }
    }

    fn mlp(&self) -> Tensor {
        self.reparameterise(&self.embedding)
    }

    /// The reparameterisation MLP applied to any embeddings (…, d) → (…, L·2·d): the input-dependent
    /// prefix (PCG) maps its generated embeddings through the same MLP as the task prefix.
    pub fn reparameterise(&self, e: &Tensor) -> Tensor {
        e.linear(&self.w1, Some(&self.b1)).tanh().linear(&self.w2, Some(&self.b2))
    }

    /// Replaces the reparameterisation by its output (for inference): P·L·2·d values instead of the
    /// MLP. Training after folding would not move the prefix.
    pub fn fold(&self) {
        *self.folded.borrow_mut() = Some(tch::no_grad(|| self.mlp()));
    }

    /// Layer `layer`'s prefix for a batch shaped like `x`.
    pub fn prefix(&self, layer: usize, x: &Tensor) -> Prefix {
        let all = match &*self.folded.borrow() {
            Some(f) => f.shallow_clone(),
            None => {
                let mut cache = self.cache.borrow_mut();
                if layer == 0 || cache.is_none() {
                    *cache = Some(self.mlp());
                }
                cache.as_ref().map(Tensor::shallow_clone).unwrap_or_else(|| self.mlp())
            }
        };
        layer_kv(&all, layer, &self.dims, x.size()[0])
    }

    /// The P prefix embeddings the MLP reads.
    pub fn embedding(&self) -> Tensor {
        self.embedding.shallow_clone()
    }

    /// Trainable parameters of the prefix and its MLP.
    pub fn params(&self) -> i64 {
        let (p, h, m) = (self.config.length, self.dims.hidden, self.config.mid_dim);
        let out = self.dims.layers * 2 * self.dims.attention_width();
        p * h + (h * m + m) + (m * out + out)
    }
}

/// Prefix tuning with the MLP reparameterisation.
#[derive(Debug)]
pub struct PrefixTuning {
    vs: nn::VarStore,
    module: PrefixModule,
}

impl PrefixTuning {
    /// Builds the prefix in its own store.
    pub fn new(config: PrefixConfig, dims: &BackboneDims, device: Device) -> Result<PrefixTuning> {
        let vs = nn::VarStore::new(device);
        let module = PrefixModule::new(vs.root(), config, dims);
        Ok(PrefixTuning { vs, module })
    }

    /// See [`PrefixModule::fold`].
    pub fn fold(&self) {
        self.module.fold();
    }
}

impl Attachment for PrefixTuning {
    fn prefix(&self, layer: usize, x: &Tensor, _train: bool) -> Option<Prefix> {
        Some(self.module.prefix(layer, x))
    }
}

impl Method for PrefixTuning {
    fn name(&self) -> &str {
        "prefix_tuning"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, _: &BackboneDims) -> i64 {
        self.module.params()
    }
}

/// Deep prompts: every layer's prefix keys and values trained directly.
#[derive(Debug)]
pub struct DeepPrompt {
    vs: nn::VarStore,
    config: DeepPromptConfig,
    dims: BackboneDims,
    /// (P, L·2·d).
    kv: Tensor,
}

impl DeepPrompt {
    /// Builds the keys and values.
    pub fn new(config: DeepPromptConfig, dims: &BackboneDims, device: Device) -> Result<DeepPrompt> {
        let vs = nn::VarStore::new(device);
        let kv = vs.root().var(
            "prompt_kv",
            &[config.length, dims.layers * 2 * dims.attention_width()],
            nn::Init::Randn { mean: 0.0, stdev: config.init_std },
        );
        Ok(DeepPrompt { vs, config, dims: dims.clone(), kv })
    }
}

impl Attachment for DeepPrompt {
    fn prefix(&self, layer: usize, x: &Tensor, _train: bool) -> Option<Prefix> {
        Some(layer_kv(&self.kv, layer, &self.dims, x.size()[0]))
    }
}

impl Method for DeepPrompt {
    fn name(&self) -> &str {
        "deep_prompt"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, d: &BackboneDims) -> i64 {
        self.config.length * d.layers * 2 * d.attention_width()
    }
}

//! Compacter and Compacter++ (Karimi Mahabadi et al., "Compacter: Efficient Low-Rank Hypercomplex
//! Adapter Layers", NeurIPS 2021): bottleneck adapters whose projections are parameterised
//! hypercomplex multiplication (PHM) layers, W = Σ_{i=1..n} A_i ⊗ B_i, the "slow" rule matrices A_i
//! (n × n) shared by every PHM layer of the model and the "fast" B_i = s_i t_iᵀ low-rank per layer.
//! Compacter adds an adapter after attention and after the FFN, Compacter++ after the FFN only.

use crate::{
    config::CompacterConfig,
    kron::{kron_sum, xavier_bound},
};
use pelt_core::{is_layer_layer_norm, Attachment, BackboneDims, Delta, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Tensor};

/// One PHM layer in → out: y = x·(Σ A_i ⊗ s_i t_iᵀ) + b.
#[derive(Debug)]
struct Phm {
    left: Tensor,
    right: Tensor,
    bias: Tensor,
}

impl Phm {
    fn new(p: nn::Path, n: i64, rank: i64, d_in: i64, d_out: i64) -> Phm {
        // Xavier-uniform with gain √2 on each factor, as the reference code; biases zero.
        let (p_in, p_out) = (d_in / n, d_out / n);
        let bl = xavier_bound(rank, p_in, 2f64.sqrt());
        let br = xavier_bound(p_out, rank, 2f64.sqrt());
        Phm {
            left: p.var("phm_left", &[n, p_in, rank], nn::Init::Uniform { lo: -bl, up: bl }),
            right: p.var("phm_right", &[n, rank, p_out], nn::Init::Uniform { lo: -br, up: br }),
            bias: p.var("bias", &[d_out], nn::Init::Const(0.0)),
        }
    }

    fn forward(&self, x: &Tensor, rule: &Tensor) -> Tensor {
        let w = kron_sum(rule, &self.left.matmul(&self.right));
        x.matmul(&w) + &self.bias
    }
}

/// Compacter adapters in every layer.
#[derive(Debug)]
pub struct Compacter {
    name: &'static str,
    vs: nn::VarStore,
    config: CompacterConfig,
    /// The shared rule matrices A (n, n, n).
    rule: Tensor,
    /// (down, up) per (layer, configured site).
    adapters: SiteTable<(Phm, Phm)>,
}

impl Compacter {
    /// `compacter`.
    pub fn plain(config: CompacterConfig, dims: &BackboneDims, device: Device) -> Result<Compacter> {
        Compacter::new("compacter", config, dims, device)
    }

    /// `compacter_pp` (Compacter++).
    pub fn plus_plus(config: CompacterConfig, dims: &BackboneDims, device: Device) -> Result<Compacter> {
        Compacter::new("compacter_pp", config, dims, device)
    }

    /// Adapters registered under `name`.
    pub fn new(name: &'static str, config: CompacterConfig, dims: &BackboneDims, device: Device) -> Result<Compacter> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (n, r, d, k) = (config.n, config.rank, dims.hidden, config.bottleneck.resolve(dims.hidden));
        let rule = root.var("phm_rule", &[n, n, n], nn::Init::Randn { mean: 0.0, stdev: config.rule_init_std });
        let adapters = SiteTable::new(dims, &config.sites, |l, s| {
            let p = &root / "layer" / l / s.as_str();
            (Phm::new(&p / "down", n, r, d, k), Phm::new(&p / "up", n, r, k, d))
        });
        Ok(Compacter { name, vs, config, rule, adapters })
    }
}

impl Attachment for Compacter {
    fn sublayer(&self, layer: usize, site: Site, _x: &Tensor, h: &Tensor, _train: bool) -> Option<Delta> {
        let (down, up) = self.adapters.get(layer, site)?;
        // gelu_new of the reference code is the tanh approximation.
        Some(Delta::fixed(up.forward(&down.forward(h, &self.rule).gelu("tanh"), &self.rule), 1.0))
    }
}

impl Method for Compacter {
    fn name(&self) -> &str {
        self.name
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn trains_backbone(&self, name: &str) -> bool {
        self.config.train_layer_norm && is_layer_layer_norm(name)
    }
    fn identity(&self) -> Identity {
        // The rule matrices start at std 1e-4, so Δ is of order 1e-4·|h|.
        Identity::Approx(1e-2)
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let (n, r, d, k) = (self.config.n, self.config.rank, dims.hidden, self.config.bottleneck.resolve(dims.hidden));
        let per_adapter = 2 * r * (d + k) + d + k;
        let norms = if self.config.train_layer_norm { dims.layer_norm_params() } else { 0 };
        let adapters: i64 = self.config.sites.iter().map(|&s| dims.layers_with(s)).sum();
        n * n * n + adapters * per_adapter + norms
    }
}

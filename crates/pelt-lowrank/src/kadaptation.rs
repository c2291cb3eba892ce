//! KAdaptation (He et al., "Parameter-efficient Model Adaptation for Vision Transformers", AAAI 2023):
//! ΔW = s·Σ_{i=1..n} A_i ⊗ B_i on chosen projections, the A_i shared by every layer (one set per
//! target), the B_i = u_i v_iᵀ low-rank per layer; mergeable into W.
//!
//! As in the reference code (PEViT), each A_i is itself rank one (a_i b_iᵀ, uniform in ±0.01) and the
//! scale is 160. The reference code zero-initialises both factors of B_i, which leaves ΔW without a
//! gradient; here u_i starts Xavier-uniform and v_i at zero, so ΔW = 0 at init and v_i trains.

use crate::{
    config::{projection_shape, KAdaptationConfig},
    kron::{kron_sum, xavier_bound},
};
use pelt_core::{Attachment, Backbone, BackboneDims, Delta, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Tensor};

/// KAdaptation on the configured projections.
#[derive(Debug)]
pub struct KAdaptation {
    vs: nn::VarStore,
    config: KAdaptationConfig,
    /// Shared A factors per target: (left (n, n, 1), right (n, 1, n)).
    shared: Vec<(Tensor, Tensor)>,
    /// (u (n, d_in/n, r), v (n, r, d_out/n)) per (layer, target).
    fast: SiteTable<(Tensor, Tensor)>,
}

impl KAdaptation {
    /// Builds the factors for a backbone of `dims`.
    pub fn new(config: KAdaptationConfig, dims: &BackboneDims, device: Device) -> Result<KAdaptation> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (n, r) = (config.n, config.rank);
        let small = nn::Init::Uniform { lo: -0.01, up: 0.01 };
        let shared = config
            .targets
            .iter()
            .map(|s| {
                let p = &root / "shared" / s.as_str();
                (p.var("rule_left", &[n, n, 1], small), p.var("rule_right", &[n, 1, n], small))
            })
            .collect();
        let fast = SiteTable::new(dims, &config.targets, |l, s| {
            let p = &root / "layer" / l / s.as_str();
            let (d_in, d_out) = projection_shape(s, dims);
            let bound = xavier_bound(r, d_in / n, 1.0);
            (
                p.var("u", &[n, d_in / n, r], nn::Init::Uniform { lo: -bound, up: bound }),
                p.var("v", &[n, r, d_out / n], nn::Init::Const(0.0)),
            )
        });
        Ok(KAdaptation { vs, config, shared, fast })
    }

    /// s·Σ A_i ⊗ B_i as a (d_in × d_out) matrix for `site` of `layer`, applied as x·H.
    fn update(&self, layer: usize, site: Site) -> Option<Tensor> {
        let i = self.config.targets.iter().position(|&s| s == site)?;
        let (left, right) = &self.shared[i];
        let (u, v) = self.fast.get(layer, site)?;
        Some(kron_sum(&left.matmul(right), &u.matmul(v)) * self.config.scale)
    }
}

impl Attachment for KAdaptation {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, _train: bool) -> Option<Delta> {
        Some(Delta::fixed(x.matmul(&self.update(layer, site)?), 1.0))
    }
}

impl Method for KAdaptation {
    fn name(&self) -> &str {
        "kadaptation"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let (n, r) = (self.config.n, self.config.rank);
        let t = self.config.targets.len() as i64;
        let fast: i64 = self
            .config
            .targets
            .iter()
            .map(|&s| {
                let (d_in, d_out) = projection_shape(s, dims);
                dims.layers_with(s) * r * (d_in + d_out)
            })
            .sum();
        t * 2 * n * n + fast
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        // The update acts as x·H; the backbone's weights are (out × in).
        self.fast.merge(backbone, |layer, site, _| self.update(layer, site).map(|u| u.tr()).unwrap_or_default())?;
        Ok(true)
    }
}

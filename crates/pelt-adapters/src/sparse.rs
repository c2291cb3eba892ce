//! SparseAdapter (He et al. 2022, "SparseAdapter: An Easy Approach for Improving the
//! Parameter-Efficiency of Adapters"): a Houlsby-placed adapter whose projection weights are pruned
//! once at initialisation, the pruned entries held at zero through training by masked gradients.
//!
//! Scores: SNIP |w·∂L/∂w| at init, as the reference code computes it: the gradient summed over a
//! fixed set of training examples (`snip_examples`, 320 by default) with dropout off, the runner
//! supplying it through [`Method::calibrate`]; random; or |w|. The threshold is global over every
//! adapter weight matrix, as the reference code's default `mask_scope`; biases are never pruned.
//! `sparsity` is the fraction pruned (the reference code's `--sparsity` flag is the fraction kept).

use crate::{
    config::{Pruning, SparseConfig},
    sequential::SequentialAdapter,
};
use pelt_core::{is_layer_layer_norm, Attachment, BackboneDims, Delta, Identity, Method, Result, Site};
use tch::{nn, Device, Kind, Tensor};

/// A pruned sequential adapter.
#[derive(Debug)]
pub struct SparseAdapter {
    name: &'static str,
    inner: SequentialAdapter,
    config: SparseConfig,
    /// (variable name, weight, kept-entry mask) for every projection weight.
    masks: Vec<(String, Tensor, Tensor)>,
}

impl SparseAdapter {
    /// `sparse_adapter`.
    pub fn sparse(config: SparseConfig, dims: &BackboneDims, device: Device) -> Result<SparseAdapter> {
        SparseAdapter::new("sparse_adapter", config, dims, device)
    }

    /// `large_sparse_adapter` (the Large-Sparse setting's defaults).
    pub fn large(config: SparseConfig, dims: &BackboneDims, device: Device) -> Result<SparseAdapter> {
        SparseAdapter::new("large_sparse_adapter", config, dims, device)
    }

    /// A pruned adapter registered under `name`; random and magnitude pruning happen here, SNIP in
    /// [`Method::calibrate`].
    pub fn new(name: &'static str, config: SparseConfig, dims: &BackboneDims, device: Device) -> Result<SparseAdapter> {
        let inner = SequentialAdapter::new(name, config.adapter.clone(), dims, device)?;
        let mut masks = Vec::new();
        for (l, site, b) in inner.adapters.iter() {
            for (which, w) in [("down_weight", &b.down_w), ("up_weight", &b.up_w)] {
                let keep = Tensor::ones(w.size(), (Kind::Bool, device));
                masks.push((format!("layer.{l}.{site}.{which}"), w.shallow_clone(), keep));
            }
        }
        let method = SparseAdapter { name, inner, config, masks };
        match method.config.pruning {
            Pruning::Random => {
                let scores: Vec<Tensor> = method.masks.iter().map(|(_, w, _)| Tensor::rand_like(w)).collect();
                method.prune(&scores);
            }
            Pruning::Magnitude => {
                let scores: Vec<Tensor> = method.masks.iter().map(|(_, w, _)| w.detach().abs()).collect();
                method.prune(&scores);
            }
            Pruning::Snip => {}
        }
        Ok(method)
    }

    /// Number of weights kept out of `total`.
    pub fn kept(total: i64, sparsity: f64) -> i64 {
        ((1.0 - sparsity) * total as f64).round() as i64
    }

    /// Keeps the globally highest-scoring weights and zeroes the rest.
    fn prune(&self, scores: &[Tensor]) {
        let _guard = tch::no_grad_guard();
        let flat = Tensor::cat(&scores.iter().map(|s| s.flatten(0, -1)).collect::<Vec<_>>(), 0);
        let total = flat.size()[0];
        let keep = Self::kept(total, self.config.sparsity);
        // topk gives exactly `keep` entries even where scores tie.
        let (_, top) = flat.topk(keep, 0, true, false);
        let global = flat.zeros_like().to_kind(Kind::Bool).index_fill(0, &top, 1);
        let mut offset = 0;
        for (_, w, mask) in &self.masks {
            let n = w.numel() as i64;
            let part = global.narrow(0, offset, n).view_as(w);
            mask.shallow_clone().copy_(&part);
            let _ = w.shallow_clone().g_mul_(&part);
            offset += n;
        }
    }
}

impl Attachment for SparseAdapter {
    fn sublayer(&self, layer: usize, site: Site, x: &Tensor, h: &Tensor, train: bool) -> Option<Delta> {
        self.inner.sublayer(layer, site, x, h, train)
    }

    fn residual_sublayer(&self, layer: usize, site: Site, sum: &dyn Fn() -> Tensor, train: bool) -> Option<Delta> {
        self.inner.residual_sublayer(layer, site, sum, train)
    }
}

impl Method for SparseAdapter {
    fn name(&self) -> &str {
        self.name
    }
    fn var_store(&self) -> &nn::VarStore {
        self.inner.var_store()
    }
    fn trains_backbone(&self, name: &str) -> bool {
        self.config.adapter.train_layer_norm && is_layer_layer_norm(name)
    }
    fn identity(&self) -> Identity {
        self.inner.identity()
    }
    fn formula_params(&self, d: &BackboneDims) -> i64 {
        let (h, m) = (d.hidden, self.config.adapter.bottleneck.resolve(d.hidden));
        let adapters: i64 = self.config.adapter.sites.iter().map(|&s| d.layers_with(s)).sum();
        let weights = Self::kept(adapters * 2 * h * m, self.config.sparsity);
        let norms = if self.config.adapter.train_layer_norm { d.layer_norm_params() } else { 0 };
        weights + adapters * (h + m) + norms
    }
    fn after_backward(&self) {
        tch::no_grad(|| {
            for (_, w, keep) in &self.masks {
                let mut g = w.grad();
                if g.defined() {
                    let _ = g.g_mul_(keep);
                }
            }
        });
    }
    fn masks(&self) -> Vec<(String, Tensor)> {
        self.masks.iter().map(|(n, _, keep)| (n.clone(), keep.shallow_clone())).collect()
    }
    fn calibration_examples(&self) -> usize {
        if self.config.pruning == Pruning::Snip {
            self.config.snip_examples
        } else {
            0
        }
    }
    fn federates(&self) -> std::result::Result<(), String> {
        match self.config.pruning {
            Pruning::Snip => Err(format!(
                "SNIP scores the weights on {} training examples at init, which a federated server does not \
                 hold (`pruning: random` or `magnitude` federates)",
                self.config.snip_examples
            )),
            Pruning::Random | Pruning::Magnitude => Ok(()),
        }
    }
    fn calibrate(&self) {
        let scores: Vec<Tensor> = self
            .masks
            .iter()
            .map(|(_, w, _)| {
                let g = w.grad();
                // A weight the batch's loss never reached scores zero.
                if g.defined() {
                    (g * w).detach().abs()
                } else {
                    w.zeros_like()
                }
            })
            .collect();
        self.prune(&scores);
    }
}

//! The LyCORIS family as peft ships it: LoHa (Hyeon-Woo et al., ICLR 2022, FedPara's Hadamard form),
//! ΔW = (W₁ₐW₁ᵦ) ⊙ (W₂ₐW₂ᵦ)·α/r, of rank up to r²; and LoKr (Yeh et al., ICLR 2024), ΔW = (W₁ ⊗ W₂)·α/r
//! with W₂ optionally low-rank. Both add ΔW x to the projection and merge into W; the inits are peft's,
//! so that ΔW = 0 at init.

use crate::config::{projection_shape, LohaConfig, LokrConfig};
use crate::kron::kron_apply;
use pelt_core::{Attachment, Backbone, BackboneDims, Delta, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Tensor};

/// Kaiming-uniform with a = √5 for a (rows × fan_in) matrix: U(−1/√fan_in, 1/√fan_in), nn.Linear's init.
fn kaiming(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform { lo: -bound, up: bound }
}

/// LoHa's four factors at one projection.
#[derive(Debug)]
struct Hadamard {
    w1a: Tensor,
    w1b: Tensor,
    w2a: Tensor,
    w2b: Tensor,
}

/// LoHa on the configured projections of every layer.
#[derive(Debug)]
pub struct Loha {
    vs: nn::VarStore,
    config: LohaConfig,
    factors: SiteTable<Hadamard>,
}

impl Loha {
    /// Builds W₁ₐ (d_out × r), W₁ᵦ (r × d_in), W₂ₐ (d_out × r) Kaiming-uniform (a = √5) and W₂ᵦ (r × d_in)
    /// zero, as peft's `reset_adapter_parameters`.
    pub fn new(config: LohaConfig, dims: &BackboneDims, device: Device) -> Result<Loha> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let r = config.r;
        let factors = SiteTable::new(dims, &config.targets, |l, site| {
            let p = &root / "layer" / l / site.as_str();
            let (d_in, d_out) = projection_shape(site, dims);
            Hadamard {
                w1a: p.var("hada_w1_a", &[d_out, r], kaiming(r)),
                w1b: p.var("hada_w1_b", &[r, d_in], kaiming(d_in)),
                w2a: p.var("hada_w2_a", &[d_out, r], kaiming(r)),
                w2b: p.var("hada_w2_b", &[r, d_in], nn::Init::Const(0.0)),
            }
        });
        Ok(Loha { vs, config, factors })
    }

    fn delta_weight(&self, f: &Hadamard) -> Tensor {
        f.w1a.matmul(&f.w1b) * f.w2a.matmul(&f.w2b) * (self.config.alpha / self.config.r as f64)
    }
}

impl Attachment for Loha {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, _train: bool) -> Option<Delta> {
        let f = self.factors.get(layer, site)?;
        // The Hadamard product has no factored form: ΔW is formed (d_out × d_in, as peft does).
        Some(Delta::fixed(x.matmul(&self.delta_weight(f).tr()), 1.0))
    }
}

impl Method for Loha {
    fn name(&self) -> &str {
        "loha"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let r = self.config.r;
        self.config
            .targets
            .iter()
            .map(|&s| {
                let (i, o) = projection_shape(s, dims);
                dims.layers_with(s) * 2 * r * (i + o)
            })
            .sum()
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        self.factors.merge(backbone, |_, _, f| self.delta_weight(f))?;
        Ok(true)
    }
}

/// peft's `factorization(dimension, factor)`: a split dimension = m·n with m ≤ n, m the largest divisor
/// not above `factor` that keeps m + n from growing (−1: any), or exactly (factor, dimension / factor)
/// when `factor` divides it.
pub fn factorization(dimension: i64, factor: i64) -> (i64, i64) {
    if factor > 0 && dimension % factor == 0 {
        let (m, n) = (factor, dimension / factor);
        return if m > n { (n, m) } else { (m, n) };
    }
    let factor = if factor == -1 { dimension } else { factor };
    let (mut m, mut n) = (1, dimension);
    // peft compares against the first split's m + n throughout (it never updates its `length`).
    let length = m + n;
    while m < n {
        let mut new_m = m + 1;
        while dimension % new_m != 0 {
            new_m += 1;
        }
        let new_n = dimension / new_m;
        if new_m + new_n > length || new_m > factor {
            break;
        }
        (m, n) = (new_m, new_n);
    }
    if m > n {
        (n, m)
    } else {
        (m, n)
    }
}

/// One LoKr factor: full, or the product of two rank-r factors.
#[derive(Debug)]
enum Factor {
    Full(Tensor),
    LowRank(Tensor, Tensor),
}

impl Factor {
    fn matrix(&self) -> Tensor {
        match self {
            Factor::Full(w) => w.shallow_clone(),
            Factor::LowRank(a, b) => a.matmul(b),
        }
    }
}

/// LoKr's two factors at one projection.
#[derive(Debug)]
struct Kron {
    w1: Factor,
    w2: Factor,
}

/// The factor shapes of a (d_out × d_in) update: ((l, k), (m, n)) with d_out = l·k, d_in = m·n, and
/// whether W₁ (l × m) and W₂ (k × n) are full.
fn lokr_shape(config: &LokrConfig, d_in: i64, d_out: i64) -> ((i64, i64), (i64, i64), bool, bool) {
    let (m, n) = factorization(d_in, config.decompose_factor);
    let (l, k) = factorization(d_out, config.decompose_factor);
    // peft: use_w1 = not (decompose_both and r < max(l, m) / 2); use_w2 = not (r < max(k, n) / 2).
    let full1 = !(config.decompose_both && (config.r as f64) < (l.max(m) as f64) / 2.0);
    let full2 = (config.r as f64) >= (k.max(n) as f64) / 2.0;
    ((l, k), (m, n), full1, full2)
}

/// LoKr on the configured projections of every layer.
#[derive(Debug)]
pub struct Lokr {
    vs: nn::VarStore,
    config: LokrConfig,
    factors: SiteTable<Kron>,
}

impl Lokr {
    /// Builds the factors with peft's init: W₁ = 0 (or W₁ₐ = 0 and W₁ᵦ Kaiming-uniform when decomposed),
    /// W₂ (or W₂ₐ and W₂ᵦ) Kaiming-uniform with a = √5.
    pub fn new(config: LokrConfig, dims: &BackboneDims, device: Device) -> Result<Lokr> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let r = config.r;
        let factors = SiteTable::new(dims, &config.targets, |layer, site| {
            let p = &root / "layer" / layer / site.as_str();
            let (d_in, d_out) = projection_shape(site, dims);
            let ((l, k), (m, n), full1, full2) = lokr_shape(&config, d_in, d_out);
            let w1 = if full1 {
                Factor::Full(p.var("lokr_w1", &[l, m], nn::Init::Const(0.0)))
            } else {
                Factor::LowRank(
                    p.var("lokr_w1_a", &[l, r], nn::Init::Const(0.0)),
                    p.var("lokr_w1_b", &[r, m], kaiming(m)),
                )
            };
            let w2 = if full2 {
                Factor::Full(p.var("lokr_w2", &[k, n], kaiming(n)))
            } else {
                Factor::LowRank(p.var("lokr_w2_a", &[k, r], kaiming(r)), p.var("lokr_w2_b", &[r, n], kaiming(n)))
            };
            Kron { w1, w2 }
        });
        Ok(Lokr { vs, config, factors })
    }

    fn scale(&self) -> f64 {
        self.config.alpha / self.config.r as f64
    }
}

impl Attachment for Lokr {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, _train: bool) -> Option<Delta> {
        let f = self.factors.get(layer, site)?;
        // (W₁ ⊗ W₂) x without forming the Kronecker product.
        Some(Delta::fixed(kron_apply(x, &f.w1.matrix(), &f.w2.matrix()), self.scale()))
    }
}

impl Method for Lokr {
    fn name(&self) -> &str {
        "lokr"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let r = self.config.r;
        self.config
            .targets
            .iter()
            .map(|&s| {
                let (d_in, d_out) = projection_shape(s, dims);
                let ((l, k), (m, n), full1, full2) = lokr_shape(&self.config, d_in, d_out);
                let w1 = if full1 { l * m } else { r * (l + m) };
                let w2 = if full2 { k * n } else { r * (k + n) };
                dims.layers_with(s) * (w1 + w2)
            })
            .sum()
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        self.factors.merge(backbone, |_, _, f| f.w1.matrix().kron(&f.w2.matrix()) * self.scale())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factorization_splits_as_peft_does() {
        // peft's own results (its `factorization` run on these sizes).
        let cases = [(16, -1, (4, 4)), (32, -1, (4, 8)), (64, -1, (8, 8)), (128, -1, (8, 16))];
        let more = [(768, -1, (24, 32)), (1024, -1, (32, 32)), (3072, -1, (48, 64)), (768, 4, (4, 192))];
        for (dim, factor, want) in cases.into_iter().chain(more) {
            assert_eq!(factorization(dim, factor), want, "factorization({dim}, {factor})");
        }
        // 768 → 768 at r 8: W₁ 24 × 24 full, W₂ 32 × 32 as rank 8: 576 + 512 (peft counts 1088).
        let c = LokrConfig::default();
        let ((l, k), (m, n), full1, full2) = lokr_shape(&c, 768, 768);
        assert_eq!(((l, k), (m, n), full1, full2), ((24, 32), (24, 32), true, false));
        assert_eq!(l * m + 8 * (k + n), 1088);
    }
}

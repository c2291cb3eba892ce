//! VeRA (Kopiczko et al., "VeRA: Vector-based Random Matrix Adaptation", ICLR 2024): one pair of
//! frozen random matrices A (r × d_in,max), B (d_out,max × r) shared by every adapted projection, and per
//! projection two trained vectors: h = W x + Λ_b B Λ_d A x, with Λ_d = diag(λ_d) (r, starting at
//! `d_initial`) and Λ_b = diag(λ_b) (d_out, starting at 0, so ΔW = 0 at init). A and B are sliced to
//! each projection's sizes, as peft does. Mergeable: ΔW = Λ_b B Λ_d A.

use crate::config::{projection_shape, VeraConfig};
use pelt_core::{Attachment, Backbone, BackboneDims, Delta, Dropout, Identity, Method, Result, Site, SiteTable};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};

/// The trained scaling vectors of one projection, with its input width.
#[derive(Debug)]
struct Scales {
    /// λ_d, (r,).
    d: Tensor,
    /// λ_b, (d_out,).
    b: Tensor,
    d_in: i64,
}

/// VeRA on the configured projections of every layer.
#[derive(Debug)]
pub struct Vera {
    vs: nn::VarStore,
    config: VeraConfig,
    /// The shared frozen A (r × d_in,max) and B (d_out,max × r); not in the store: they never train,
    /// and every build with the same `projection_seed` draws them again.
    a: Tensor,
    b: Tensor,
    scales: SiteTable<Scales>,
}

/// `rows × cols` values uniform on (−bound, bound) from `rng`, row-major.
fn uniform(rng: &mut ChaCha8Rng, rows: i64, cols: i64, bound: f64) -> Tensor {
    let values: Vec<f32> = (0..rows * cols).map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32).collect();
    Tensor::from_slice(&values).view([rows, cols])
}

impl Vera {
    /// Draws the shared pair (Kaiming-uniform with gain √2, as peft's `_kaiming_init`: bound √(6 / fan_in),
    /// A first, then B) and builds λ_d = `d_initial`, λ_b = 0 per target.
    pub fn new(config: VeraConfig, dims: &BackboneDims, device: Device) -> Result<Vera> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let shapes: Vec<(i64, i64)> = config.targets.iter().map(|&s| projection_shape(s, dims)).collect();
        let max_in = shapes.iter().map(|s| s.0).max().unwrap_or(1);
        let max_out = shapes.iter().map(|s| s.1).max().unwrap_or(1);
        let r = config.r;
        let mut rng = ChaCha8Rng::seed_from_u64(config.projection_seed);
        let a = uniform(&mut rng, r, max_in, (6.0 / max_in as f64).sqrt()).to_device(device);
        let b = uniform(&mut rng, max_out, r, (6.0 / r as f64).sqrt()).to_device(device);
        let scales = SiteTable::new(dims, &config.targets, |l, site| {
            let p = &root / "layer" / l / site.as_str();
            let (d_in, d_out) = projection_shape(site, dims);
            Scales {
                d: p.var("lambda_d", &[r], nn::Init::Const(config.d_initial)),
                b: p.var("lambda_b", &[d_out], nn::Init::Const(0.0)),
                d_in,
            }
        });
        Ok(Vera { vs, config, a, b, scales })
    }

    /// The shared A and B cut to one projection: (r × d_in) and (d_out × r).
    fn sliced(&self, s: &Scales) -> (Tensor, Tensor) {
        (self.a.narrow(1, 0, s.d_in), self.b.narrow(0, 0, s.b.size()[0]))
    }

    /// The shared frozen pair (A, B), sharing storage with the method's own (an import or a reference
    /// test writes peft's pair into them).
    pub fn shared(&self) -> (Tensor, Tensor) {
        (self.a.shallow_clone(), self.b.shallow_clone())
    }
}

impl Attachment for Vera {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        let s = self.scales.get(layer, site)?;
        let (a, b) = self.sliced(s);
        let x = x.drop_out(self.config.dropout, train);
        // λ_d folds into A's rows and λ_b into B's rows: two small products instead of two passes
        // over (batch, len, ·) activations.
        let h = x.matmul(&(s.d.unsqueeze(1) * a).tr());
        Some(Delta::fixed(h.matmul(&(s.b.unsqueeze(1) * b).tr()), 1.0))
    }
}

impl Method for Vera {
    fn name(&self) -> &str {
        "vera"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let r = self.config.r;
        self.config.targets.iter().map(|&s| dims.layers_with(s) * (r + projection_shape(s, dims).1)).sum()
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        self.scales.merge(backbone, |_, _, s| {
            let (a, b) = self.sliced(s);
            (s.b.unsqueeze(1) * b).matmul(&(s.d.unsqueeze(1) * a))
        })?;
        Ok(true)
    }
}

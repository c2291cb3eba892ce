//! KronA (Edalati et al. 2022, "KronA: Parameter Efficient Tuning with Kronecker Adapter"): the
//! projection's update is a Kronecker product, h = W x + s·(A ⊗ B) x, mergeable into W; and KronA^B_res,
//! a Kronecker adapter beside the FFN with a learned residual scale.

use crate::{
    config::{projection_shape, KronaConfig, KronaResConfig, KronaResForm},
    kron::kron_apply,
};
use pelt_core::{Attachment, Backbone, BackboneDims, Delta, Dropout, Identity, Method, Result, Scale, Site, SiteTable};
use tch::{nn, Device, Tensor};

/// One Kronecker pair.
#[derive(Debug)]
struct Pair {
    a: Tensor,
    b: Tensor,
}

/// A Kronecker pair for a (d_out × d_in) update, A of shape `a_shape` Kaiming-uniform (a = √5) and B
/// zero, so the update is zero at init and B receives the first gradients (as LoRA's B does).
fn pair(p: nn::Path, a_shape: [i64; 2], d_in: i64, d_out: i64) -> Pair {
    let bound = 1.0 / (a_shape[1] as f64).sqrt();
    Pair {
        a: p.var("kron_a", &a_shape, nn::Init::Uniform { lo: -bound, up: bound }),
        b: p.var("kron_b", &[d_out / a_shape[0], d_in / a_shape[1]], nn::Init::Const(0.0)),
    }
}

/// KronA on the configured projections of every layer.
#[derive(Debug)]
pub struct Krona {
    vs: nn::VarStore,
    config: KronaConfig,
    /// A pair per (layer, target).
    pairs: SiteTable<Pair>,
}

impl Krona {
    /// Builds the pairs for a backbone of `dims`.
    pub fn new(config: KronaConfig, dims: &BackboneDims, device: Device) -> Result<Krona> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let pairs = SiteTable::new(dims, &config.targets, |l, site| {
            let (d_in, d_out) = projection_shape(site, dims);
            pair(&root / "layer" / l / site.as_str(), config.a_shape, d_in, d_out)
        });
        Ok(Krona { vs, config, pairs })
    }
}

impl Attachment for Krona {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        let pair = self.pairs.get(layer, site)?;
        let x = x.drop_out(self.config.dropout, train);
        Some(Delta::fixed(kron_apply(&x, &pair.a, &pair.b), self.config.scale))
    }
}

impl Method for Krona {
    fn name(&self) -> &str {
        "krona"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let [ar, ac] = self.config.a_shape;
        self.config
            .targets
            .iter()
            .map(|&s| {
                let (d_in, d_out) = projection_shape(s, dims);
                dims.layers_with(s) * (ar * ac + (d_out / ar) * (d_in / ac))
            })
            .sum()
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        self.pairs.merge(backbone, |_, _, p| p.a.kron(&p.b) * self.config.scale)?;
        Ok(true)
    }
}

/// KronA^B_res beside each layer's FFN (x the FFN's input): Δ = s·(A ⊗ B)·x + s_res,l·x with s_res,l
/// learned (the `residual` form), or Δ = s_l·(A ⊗ B)·x with s_l learned (`scaled_branch`).
#[derive(Debug)]
pub struct KronaRes {
    vs: nn::VarStore,
    config: KronaResConfig,
    /// (pair, learned scale) per layer: s_res,l or s_l by the form.
    layers: Vec<(Pair, Tensor)>,
}

impl KronaRes {
    /// Builds one adapter per layer.
    pub fn new(config: KronaResConfig, dims: &BackboneDims, device: Device) -> Result<KronaRes> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let layers = (0..dims.layers)
            .map(|l| {
                let p = &root / "layer" / l / "ffn";
                let scale = match config.form {
                    KronaResForm::Residual => p.var("residual_scale", &[1], nn::Init::Const(config.residual_init)),
                    KronaResForm::ScaledBranch => p.var("scale", &[1], nn::Init::Const(config.scale)),
                };
                (pair(p, config.a_shape, dims.hidden, dims.hidden), scale)
            })
            .collect();
        Ok(KronaRes { vs, config, layers })
    }
}

impl Attachment for KronaRes {
    fn sublayer(&self, layer: usize, site: Site, x: &Tensor, _h: &Tensor, _train: bool) -> Option<Delta> {
        if site != Site::FfnOutput {
            return None;
        }
        let (pair, scale) = &self.layers[layer];
        let branch = kron_apply(x, &pair.a, &pair.b);
        Some(match self.config.form {
            KronaResForm::Residual => Delta::fixed(branch * self.config.scale + x * scale, 1.0),
            KronaResForm::ScaledBranch => Delta { value: branch, scale: Scale::Tensor(scale.shallow_clone()) },
        })
    }
}

impl Method for KronaRes {
    fn name(&self) -> &str {
        "krona_res"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        // B starts at zero; the identity path adds s_res·x from the start unless s_res starts at 0.
        match self.config.form {
            KronaResForm::Residual if self.config.residual_init != 0.0 => Identity::None,
            _ => Identity::Exact,
        }
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let [ar, ac] = self.config.a_shape;
        dims.layers * (ar * ac + (dims.hidden / ar) * (dims.hidden / ac) + 1)
    }
}

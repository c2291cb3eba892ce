//! (IA)³ (Liu et al., NeurIPS 2022): learned vectors rescale keys, values and the FFN's intermediate
//! activations, k ← l_k ⊙ k, v ← l_v ⊙ v, a ← l_ff ⊙ γ(W₁x); all start at 1 (identity). Mergeable: a
//! rescaled projection output becomes diag(l)·W and l ⊙ b; rescaled activations become W₂·diag(l_ff).

use crate::config::{projection_shape, Ia3Config};
use pelt_core::{Attachment, Backbone, BackboneDims, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Tensor};

/// (IA)³'s vectors, one per (layer, site).
#[derive(Debug)]
pub struct Ia3 {
    vs: nn::VarStore,
    config: Ia3Config,
    scales: SiteTable<Tensor>,
}

/// The length of the vector at `site`: the FFN's width for its activations, else the projection's output.
fn width(site: Site, dims: &BackboneDims) -> i64 {
    match site {
        Site::FfnIntermediate => dims.intermediate,
        s => projection_shape(s, dims).1,
    }
}

impl Ia3 {
    /// Builds the vectors, all ones.
    pub fn new(config: Ia3Config, dims: &BackboneDims, device: Device) -> Result<Ia3> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let scales = SiteTable::new(dims, &config.sites, |l, site| {
            (&root / "layer" / l / site.as_str()).var("ia3_l", &[width(site, dims)], nn::Init::Const(1.0))
        });
        Ok(Ia3 { vs, config, scales })
    }
}

impl Attachment for Ia3 {
    fn projection_input(&self, layer: usize, site: Site, x: &Tensor, _train: bool) -> Option<Tensor> {
        // The activations are the FFN output projection's input.
        (site == Site::FfnOutput).then(|| self.scales.get(layer, Site::FfnIntermediate)).flatten().map(|l| x * l)
    }

    fn projection_output(&self, layer: usize, site: Site, h: &Tensor, _train: bool) -> Option<Tensor> {
        (site != Site::FfnIntermediate).then(|| self.scales.get(layer, site)).flatten().map(|l| h * l)
    }
}

impl Method for Ia3 {
    fn name(&self) -> &str {
        "ia3"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        self.config.sites.iter().map(|&s| dims.layers_with(s) * width(s, dims)).sum()
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        tch::no_grad(|| -> Result<()> {
            for (layer, site, l) in self.scales.iter() {
                let missing = || pelt_core::PeltError::Shape(format!("(IA)³ needs the weights of layer {layer}"));
                let less = l - 1.0;
                if site == Site::FfnIntermediate {
                    let w = backbone.projection_weight(layer, Site::FfnOutput).ok_or_else(missing)?;
                    weights.push((layer, Site::FfnOutput, &w * less.unsqueeze(0)));
                } else {
                    let w = backbone.projection_weight(layer, site).ok_or_else(missing)?;
                    let b = backbone.projection_bias(layer, site).ok_or_else(missing)?;
                    weights.push((layer, site, &w * less.unsqueeze(1)));
                    biases.push((layer, site, b * &less));
                }
            }
            Ok(())
        })?;
        for (layer, site, dw) in weights {
            backbone.merge_projection(layer, site, &dw)?;
        }
        for (layer, site, db) in biases {
            backbone.merge_projection_bias(layer, site, &db)?;
        }
        Ok(true)
    }
}

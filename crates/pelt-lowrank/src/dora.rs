//! DoRA (Liu et al., "DoRA: Weight-Decomposed Low-Rank Adaptation", ICML 2024): the adapted weight is
//! split into a trained magnitude and a direction updated by LoRA,
//! W' = m ⊙ (W + s·B A) / ‖W + s·B A‖, the norm taken per output row (over the input dimension) and,
//! as the paper's §4.3 prescribes to save memory, treated as a constant in the backward pass. m starts
//! at ‖W‖, so W' = W at init.
//!
//! As a Δ on the projection's output: with x' = dropout(x) and c = m / ‖W + s·B A‖ (per output),
//! Δ = (c − 1) ⊙ W x' + c ⊙ s·B A x' — peft's form, which keeps the base output W x + b on the
//! undropped input and reduces to c ⊙ (W x + s·B A x) + b without dropout.

use crate::config::LoraConfig;
use crate::lora::LoraModule;
use pelt_core::{Attachment, Backbone, BackboneDims, Delta, Dropout, Identity, Method, Result, Site, SiteTable};
use std::cell::RefCell;
use tch::{nn, Device, Kind, Tensor};

/// LoRA pairs with a magnitude vector per target projection.
#[derive(Debug)]
pub struct Dora {
    vs: nn::VarStore,
    lora: LoraModule,
    config: LoraConfig,
    /// m, (d_out,) per (layer, target).
    magnitude: SiteTable<Tensor>,
    /// The frozen weights W of the targets, shared with the backbone, set by `init_from`.
    weights: RefCell<Vec<((usize, Site), Tensor)>>,
}

impl Dora {
    /// Builds the pairs (as LoRA's) and the magnitudes (set to ‖W‖ by `init_from`).
    pub fn new(config: LoraConfig, dims: &BackboneDims, device: Device) -> Result<Dora> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let lora = LoraModule::new(&root, config.clone(), dims);
        let magnitude = SiteTable::new(dims, &config.targets, |l, site| {
            let (_, d_out) = crate::config::projection_shape(site, dims);
            (&root / "layer" / l / site.as_str()).var("magnitude", &[d_out], nn::Init::Const(1.0))
        });
        Ok(Dora { vs, lora, config, magnitude, weights: RefCell::new(Vec::new()) })
    }

    fn weight(&self, layer: usize, site: Site) -> Tensor {
        let weights = self.weights.borrow();
        let found = weights.iter().find(|(k, _)| *k == (layer, site));
        found
            .map(|(_, w)| w.shallow_clone())
            .unwrap_or_else(|| panic!("DoRA ran before init_from gave it the weight of {site} in layer {layer}"))
    }

    /// c = m / ‖W + s·B A‖ per output row, the norm detached.
    fn column_scale(&self, layer: usize, site: Site, w: &Tensor) -> Option<Tensor> {
        let m = self.magnitude.get(layer, site)?;
        let dw = self.lora.delta_weight(layer, site)?;
        let norm = (w + dw).detach().linalg_norm(2.0, &[1i64][..], false, Kind::Float);
        Some(m / norm)
    }
}

impl Attachment for Dora {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        self.magnitude.get(layer, site)?;
        let w = self.weight(layer, site);
        let c = self.column_scale(layer, site, &w)?;
        let x = x.drop_out(self.config.dropout, train);
        let base = x.matmul(&w.tr());
        let low = self.lora.product_no_dropout(layer, site, &x, self.lora.scale())?;
        Some(Delta::fixed((&c - 1.0) * base + &c * low, 1.0))
    }
}

impl Method for Dora {
    fn name(&self) -> &str {
        "dora"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        // m = ‖W‖ and B = 0: c = 1 up to the rounding of the norm.
        Identity::Approx(1e-4)
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let magnitudes: i64 =
            self.config.targets.iter().map(|&s| dims.layers_with(s) * crate::config::projection_shape(s, dims).1).sum();
        self.lora.params(dims) + magnitudes
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        // PiSSA first, if asked for: the direction then starts from the residual weight.
        self.lora.init_from(backbone);
        let mut weights = self.weights.borrow_mut();
        weights.clear();
        tch::no_grad(|| {
            for (layer, site, m) in self.magnitude.iter() {
                let w = backbone.projection_weight(layer, site).unwrap_or_else(|| {
                    panic!("DoRA needs the weight of {site} in layer {layer}, which this backbone does not expose")
                });
                let dw = self.lora.delta_weight(layer, site).expect("a pair for every magnitude");
                let norm = (&w + dw).linalg_norm(2.0, &[1i64][..], false, Kind::Float);
                m.shallow_clone().copy_(&norm);
                weights.push(((layer, site), w));
            }
        });
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        let mut deltas = Vec::new();
        tch::no_grad(|| {
            for (layer, site, _) in self.magnitude.iter() {
                let w = self.weight(layer, site);
                let c = self.column_scale(layer, site, &w).expect("a magnitude for every target");
                let dw = self.lora.delta_weight(layer, site).expect("a pair for every magnitude");
                // W' − W = c ⊙ (W + s·B A) − W, row by row.
                deltas.push((layer, site, c.unsqueeze(1) * (&w + dw) - &w));
            }
        });
        for (layer, site, delta) in deltas {
            backbone.merge_projection(layer, site, &delta)?;
        }
        Ok(true)
    }
}

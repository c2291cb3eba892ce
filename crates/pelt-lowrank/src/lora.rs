//! LoRA (Hu et al. 2022): h = W x + (α/r)·B A x.

use crate::config::{projection_shape, LoraConfig};
use pelt_core::{Attachment, Backbone, BackboneDims, Delta, Dropout, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Tensor};

/// A low-rank pair A (r × d_in), B (d_out × r).
#[derive(Debug)]
struct Pair {
    a: Tensor,
    b: Tensor,
}

/// LoRA pairs built under any path of a store (LoRA owns one; mixtures build them beside other parts).
#[derive(Debug)]
pub struct LoraModule {
    config: LoraConfig,
    /// A pair per (layer, target).
    pairs: SiteTable<Pair>,
}

impl LoraModule {
    /// Builds A (Kaiming-uniform with a = √5, as nn.Linear and the reference code) and B = 0 under `root`.
    pub fn new(root: &nn::Path, config: LoraConfig, dims: &BackboneDims) -> LoraModule {
        let pairs = SiteTable::new(dims, &config.targets, |l, site| {
            let p = root / "layer" / l / site.as_str();
            let (d_in, d_out) = projection_shape(site, dims);
            // Kaiming-uniform with a = √5 is U(-1/√fan_in, 1/√fan_in).
            let bound = 1.0 / (d_in as f64).sqrt();
            Pair {
                a: p.var("lora_a", &[config.r, d_in], nn::Init::Uniform { lo: -bound, up: bound }),
                b: p.var("lora_b", &[d_out, config.r], nn::Init::Const(0.0)),
            }
        });
        LoraModule { config, pairs }
    }

    /// The scale α/r.
    pub fn scale(&self) -> f64 {
        self.config.alpha / self.config.r as f64
    }

    /// Δ = (α/r)·B A x for the projection at `site`, if it is a target.
    pub fn delta(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        Some(Delta::fixed(self.product(layer, site, x, train, self.scale())?, 1.0))
    }

    /// s·B A x (with LoRA's dropout on x) for the projection at `site`, if it is a target; UniPELT
    /// replaces α/r by its gate and asks for s = 1.
    pub fn product(&self, layer: usize, site: Site, x: &Tensor, train: bool, s: f64) -> Option<Tensor> {
        let pair = self.pairs.get(layer, site)?;
        let x = x.drop_out(self.config.dropout, train);
        // The scale goes into B (r columns), not onto the (batch, len, d_out) product: one elementwise
        // pass fewer forward and backward at every target.
        let b = if s == 1.0 { pair.b.shallow_clone() } else { &pair.b * s };
        Some(x.matmul(&pair.a.tr()).matmul(&b.tr()))
    }

    /// Trainable parameters: r·(d_in + d_out) for each target in each layer that has it.
    pub fn params(&self, dims: &BackboneDims) -> i64 {
        self.config
            .targets
            .iter()
            .map(|&s| {
                let (i, o) = projection_shape(s, dims);
                dims.layers_with(s) * self.config.r * (i + o)
            })
            .sum()
    }
}

/// LoRA on the configured projections of every layer.
#[derive(Debug)]
pub struct Lora {
    vs: nn::VarStore,
    module: LoraModule,
}

impl Lora {
    /// Builds the pairs in their own store.
    pub fn new(config: LoraConfig, dims: &BackboneDims, device: Device) -> Result<Lora> {
        let vs = nn::VarStore::new(device);
        let module = LoraModule::new(&vs.root(), config, dims);
        Ok(Lora { vs, module })
    }
}

impl Attachment for Lora {
    fn projection(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        self.module.delta(layer, site, x, train)
    }
}

impl Method for Lora {
    fn name(&self) -> &str {
        "lora"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        self.module.params(dims)
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        let m = &self.module;
        m.pairs.merge(backbone, |_, _, pair| pair.b.matmul(&pair.a) * m.scale())?;
        Ok(true)
    }
}

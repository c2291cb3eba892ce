//! LoRA (Hu et al. 2022): h = W x + (α/r)·B A x; with `rslora`, α/√r; with `init: pissa`, the pair
//! starts as W's principal part and W as the residual.

use crate::config::{projection_shape, LoraConfig, LoraInit};
use pelt_core::{Attachment, Backbone, BackboneDims, Delta, Dropout, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Kind, Tensor};

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
    /// Builds A (Kaiming-uniform with a = √5, as nn.Linear and the reference code; N(0, 1/r²) under
    /// `init: gaussian`) and B = 0 under `root`. PiSSA's pair is set by [`LoraModule::init_from`].
    pub fn new(root: &nn::Path, config: LoraConfig, dims: &BackboneDims) -> LoraModule {
        let pairs = SiteTable::new(dims, &config.targets, |l, site| {
            let p = root / "layer" / l / site.as_str();
            let (d_in, d_out) = projection_shape(site, dims);
            let init = match config.init {
                LoraInit::Gaussian => nn::Init::Randn { mean: 0.0, stdev: 1.0 / config.r as f64 },
                // Kaiming-uniform with a = √5 is U(-1/√fan_in, 1/√fan_in).
                LoraInit::Kaiming | LoraInit::Pissa => {
                    let bound = 1.0 / (d_in as f64).sqrt();
                    nn::Init::Uniform { lo: -bound, up: bound }
                }
            };
            Pair {
                a: p.var("lora_a", &[config.r, d_in], init),
                b: p.var("lora_b", &[d_out, config.r], nn::Init::Const(0.0)),
            }
        });
        LoraModule { config, pairs }
    }

    /// Under `init: pissa`, moves each target weight's top-r singular part into the pair (PiSSA,
    /// Meng et al. 2024, as peft's `pissa_init`): W = U S Vᵀ, S_r ← S_r / s, A = √S_r V_rᵀ,
    /// B = U_r √S_r, and W ← W − s·B A in the backbone's own (frozen) weight, so W + s·B A is W again.
    /// The runner restores the pretrained weights after each run. Nothing for the other inits.
    pub fn init_from(&self, backbone: &dyn Backbone) {
        if self.config.init != LoraInit::Pissa {
            return;
        }
        let s = self.scale();
        tch::no_grad(|| {
            for (layer, site, pair) in self.pairs.iter() {
                let Some(mut w) = backbone.projection_weight(layer, site) else {
                    panic!("PiSSA needs the weight of {site} in layer {layer}, which this backbone does not expose");
                };
                let r = self.config.r;
                let wd = w.to_kind(Kind::Double);
                let (u, sv, v) = wd.svd(true, true);
                let vt = v.tr();
                let root = (sv.narrow(0, 0, r) / s).sqrt();
                let a = root.unsqueeze(1) * vt.narrow(0, 0, r);
                let b = u.narrow(1, 0, r) * root.unsqueeze(0);
                pair.a.shallow_clone().copy_(&a);
                pair.b.shallow_clone().copy_(&b);
                let residual = wd - b.matmul(&a) * s;
                w.copy_(&residual);
            }
        });
    }

    /// The scale α/r (α/√r under `rslora`).
    pub fn scale(&self) -> f64 {
        self.config.scale()
    }

    /// Δ = (α/r)·B A x for the projection at `site`, if it is a target.
    pub fn delta(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        Some(Delta::fixed(self.product(layer, site, x, train, self.scale())?, 1.0))
    }

    /// s·B A x (with LoRA's dropout on x) for the projection at `site`, if it is a target; UniPELT
    /// replaces α/r by its gate and asks for s = 1.
    pub fn product(&self, layer: usize, site: Site, x: &Tensor, train: bool, s: f64) -> Option<Tensor> {
        self.pairs.get(layer, site)?;
        self.product_no_dropout(layer, site, &x.drop_out(self.config.dropout, train), s)
    }

    /// s·B A x without the branch's dropout (for a caller that dropped x out itself, as DoRA does).
    pub fn product_no_dropout(&self, layer: usize, site: Site, x: &Tensor, s: f64) -> Option<Tensor> {
        let pair = self.pairs.get(layer, site)?;
        // The scale goes into B (r columns), not onto the (batch, len, d_out) product: one elementwise
        // pass fewer forward and backward at every target.
        let b = if s == 1.0 { pair.b.shallow_clone() } else { &pair.b * s };
        Some(x.matmul(&pair.a.tr()).matmul(&b.tr()))
    }

    /// ΔW = s·B A (d_out × d_in) at `site`, with LoRA's scale s.
    pub fn delta_weight(&self, layer: usize, site: Site) -> Option<Tensor> {
        let pair = self.pairs.get(layer, site)?;
        Some(pair.b.matmul(&pair.a) * self.scale())
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
        match self.module.config.init {
            // W − s·B A + s·B A rounds differently from W.
            LoraInit::Pissa => Identity::Approx(1e-4),
            LoraInit::Kaiming | LoraInit::Gaussian => Identity::Exact,
        }
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        self.module.params(dims)
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        self.module.init_from(backbone);
    }
    fn merge_into(&self, backbone: &mut dyn Backbone) -> Result<bool> {
        let m = &self.module;
        m.pairs.merge(backbone, |layer, site, _| m.delta_weight(layer, site).expect("a pair at every entry"))?;
        Ok(true)
    }
}

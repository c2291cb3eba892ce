//! The Houlsby adapter (Houlsby et al. 2019): h ← h + up(f(down(h))) after each chosen sublayer.

use crate::config::{Activation, HoulsbyConfig};
use pelt_core::{Attachment, BackboneDims, Delta, Identity, Method, Result, Site};
use tch::{nn, Device, Tensor};

/// One bottleneck: down (m × d), up (d × m), with biases.
#[derive(Debug)]
pub struct Bottleneck {
    down_w: Tensor,
    down_b: Tensor,
    up_w: Tensor,
    up_b: Tensor,
    act: Activation,
    dropout: f64,
}

impl Bottleneck {
    /// A bottleneck d → m → d under `p`, weights drawn from a ±2σ truncated normal with std `std`.
    pub fn new(p: nn::Path, d: i64, m: i64, std: f64, act: Activation, dropout: f64) -> Bottleneck {
        let trunc = |name: &str, dims: &[i64]| {
            let t = p.var(name, dims, nn::Init::Randn { mean: 0.0, stdev: std });
            tch::no_grad(|| {
                let _ = t.shallow_clone().clamp_(-2.0 * std, 2.0 * std);
            });
            t
        };
        let down_w = trunc("down_weight", &[m, d]);
        let up_w = trunc("up_weight", &[d, m]);
        Bottleneck {
            down_b: p.var("down_bias", &[m], nn::Init::Const(0.0)),
            up_b: p.var("up_bias", &[d], nn::Init::Const(0.0)),
            down_w,
            up_w,
            act,
            dropout,
        }
    }

    /// up(f(down(x))).
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let x = x.dropout(self.dropout, train);
        self.act.apply(&x.linear(&self.down_w, Some(&self.down_b))).linear(&self.up_w, Some(&self.up_b))
    }
}

/// Houlsby adapters in every layer at the configured sublayers.
#[derive(Debug)]
pub struct Houlsby {
    vs: nn::VarStore,
    config: HoulsbyConfig,
    /// adapters[layer][i] for config.sites[i].
    adapters: Vec<Vec<Bottleneck>>,
}

impl Houlsby {
    /// Builds the adapters for a backbone of `dims`.
    pub fn new(config: HoulsbyConfig, dims: &BackboneDims, device: Device) -> Result<Houlsby> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let adapters = (0..dims.layers)
            .map(|l| {
                config
                    .sites
                    .iter()
                    .map(|s| {
                        Bottleneck::new(
                            &root / "layer" / l / s.as_str(),
                            dims.hidden,
                            config.bottleneck,
                            config.init_std,
                            config.activation,
                            config.dropout,
                        )
                    })
                    .collect()
            })
            .collect();
        Ok(Houlsby { vs, config, adapters })
    }
}

impl Attachment for Houlsby {
    fn sublayer(&self, layer: usize, site: Site, _x: &Tensor, h: &Tensor, train: bool) -> Option<Delta> {
        let i = self.config.sites.iter().position(|s| *s == site)?;
        Some(Delta::fixed(self.adapters[layer][i].forward(h, train), 1.0))
    }
}

impl Method for Houlsby {
    fn name(&self) -> &str {
        "houlsby"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn trains_backbone(&self, name: &str) -> bool {
        self.config.train_layer_norm && name.starts_with("encoder.layer.") && name.contains("LayerNorm")
    }
    fn identity(&self) -> Identity {
        // Near-identity: Δ is of order init_std² · m · |h|; LayerNorm keeps it small downstream.
        Identity::Approx(
            1e-3_f64.max(100.0 * self.config.init_std * self.config.init_std * self.config.bottleneck as f64),
        )
    }
    fn formula_params(&self, d: &BackboneDims) -> i64 {
        let (h, m) = (d.hidden, self.config.bottleneck);
        let adapters = d.layers * self.config.sites.len() as i64 * (2 * h * m + h + m);
        let norms = if self.config.train_layer_norm { d.layers * 4 * h } else { 0 };
        adapters + norms
    }
}

//! Sequential bottleneck adapters: h ← h + up(f(down(h))) after each chosen sublayer (Houlsby et al.
//! 2019 after attention and the FFN), or h ← h + up(f(down(LN(h + x)))) reading the residual sum
//! (Pfeiffer et al. 2021, after the FFN only); see [`Placement`].

use crate::config::{Activation, AdapterDropout, BottleneckConfig, DropoutAt, Placement};
use pelt_core::{
    is_layer_layer_norm, Attachment, BackboneDims, Delta, Dropout, Identity, Method, Result, Site, SiteTable,
};
use tch::{nn, Device, Tensor};

/// How a bottleneck's projection weights start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BottleneckInit {
    /// Both from a ±2σ truncated normal with this std (Houlsby's near-identity init).
    TruncatedNormal(f64),
    /// Down Kaiming-uniform (a = √5, as nn.Linear), up zero: Δ = 0 exactly at init (He et al.'s
    /// "lora" option for parallel adapters).
    Lora,
}

/// One bottleneck: down (m × d), up (d × m), with biases.
#[derive(Debug)]
pub struct Bottleneck {
    /// Down-projection weight (m × d).
    pub down_w: Tensor,
    down_b: Tensor,
    /// Up-projection weight (d × m).
    pub up_w: Tensor,
    up_b: Tensor,
    act: Activation,
    dropout: AdapterDropout,
}

impl Bottleneck {
    /// A bottleneck d → m → d under `p`.
    pub fn new(
        p: nn::Path,
        d: i64,
        m: i64,
        init: BottleneckInit,
        act: Activation,
        dropout: impl Into<AdapterDropout>,
    ) -> Bottleneck {
        let dropout = dropout.into();
        let (down_w, up_w) = match init {
            BottleneckInit::TruncatedNormal(std) => {
                let trunc = |name: &str, dims: &[i64]| {
                    let t = p.var(name, dims, nn::Init::Randn { mean: 0.0, stdev: std });
                    tch::no_grad(|| {
                        let _ = t.shallow_clone().clamp_(-2.0 * std, 2.0 * std);
                    });
                    t
                };
                (trunc("down_weight", &[m, d]), trunc("up_weight", &[d, m]))
            }
            BottleneckInit::Lora => {
                let bound = 1.0 / (d as f64).sqrt();
                (
                    p.var("down_weight", &[m, d], nn::Init::Uniform { lo: -bound, up: bound }),
                    p.var("up_weight", &[d, m], nn::Init::Const(0.0)),
                )
            }
        };
        Bottleneck {
            down_b: p.var("down_bias", &[m], nn::Init::Const(0.0)),
            up_b: p.var("up_bias", &[d], nn::Init::Const(0.0)),
            down_w,
            up_w,
            act,
            dropout,
        }
    }

    /// up(f(down(x))), with the dropout on x or on f(·) by its place.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let AdapterDropout { p, at } = self.dropout;
        match at {
            DropoutAt::Input => {
                let x = x.drop_out(p, train);
                self.act.apply(&x.linear(&self.down_w, Some(&self.down_b))).linear(&self.up_w, Some(&self.up_b))
            }
            DropoutAt::Bottleneck => self
                .act
                .apply(&x.linear(&self.down_w, Some(&self.down_b)))
                .drop_out(p, train)
                .linear(&self.up_w, Some(&self.up_b)),
        }
    }
}

/// Sequential adapters in every layer at the configured sublayers.
#[derive(Debug)]
pub struct SequentialAdapter {
    name: &'static str,
    vs: nn::VarStore,
    config: BottleneckConfig,
    /// The bottleneck m on this backbone (the config may give it as a reduction factor).
    width: i64,
    /// One bottleneck per (layer, configured site).
    pub(crate) adapters: SiteTable<Bottleneck>,
}

impl SequentialAdapter {
    /// Houlsby adapters for a backbone of `dims`.
    pub fn houlsby(config: BottleneckConfig, dims: &BackboneDims, device: Device) -> Result<SequentialAdapter> {
        SequentialAdapter::new("houlsby", config, dims, device)
    }

    /// Pfeiffer adapters for a backbone of `dims`.
    pub fn pfeiffer(config: BottleneckConfig, dims: &BackboneDims, device: Device) -> Result<SequentialAdapter> {
        SequentialAdapter::new("pfeiffer", config, dims, device)
    }

    /// Adapters registered under `name`.
    pub fn new(
        name: &'static str,
        config: BottleneckConfig,
        dims: &BackboneDims,
        device: Device,
    ) -> Result<SequentialAdapter> {
        let vs = nn::VarStore::new(device);
        let init = BottleneckInit::TruncatedNormal(config.init_std);
        let width = config.bottleneck.resolve(dims.hidden);
        let adapters = bottlenecks(&vs.root(), dims, &config.sites, width, init, config.activation, config.dropout);
        Ok(SequentialAdapter { name, vs, config, width, adapters })
    }

    /// The adapter's settings.
    pub fn config(&self) -> &BottleneckConfig {
        &self.config
    }
}

/// One bottleneck per (layer, site), under `layer.{l}.{site}` of `root` (also for mixtures that build
/// adapters beside other parts).
pub fn bottlenecks(
    root: &nn::Path,
    dims: &BackboneDims,
    sites: &[Site],
    m: i64,
    init: BottleneckInit,
    act: Activation,
    dropout: impl Into<AdapterDropout>,
) -> SiteTable<Bottleneck> {
    let dropout = dropout.into();
    SiteTable::new(dims, sites, |l, s| {
        Bottleneck::new(root / "layer" / l / s.as_str(), dims.hidden, m, init, act, dropout)
    })
}

/// Parameters of one d → m → d bottleneck with biases at each of `sites` in every layer that has it.
pub fn bottleneck_params(d: &BackboneDims, sites: &[Site], m: i64) -> i64 {
    let h = d.hidden;
    sites.iter().map(|&s| d.layers_with(s)).sum::<i64>() * (2 * h * m + h + m)
}

impl Attachment for SequentialAdapter {
    fn sublayer(&self, layer: usize, site: Site, _x: &Tensor, h: &Tensor, train: bool) -> Option<Delta> {
        if self.config.placement != Placement::Output {
            return None;
        }
        Some(Delta::fixed(self.adapters.get(layer, site)?.forward(h, train), 1.0))
    }

    fn residual_sublayer(&self, layer: usize, site: Site, sum: &dyn Fn() -> Tensor, train: bool) -> Option<Delta> {
        if self.config.placement != Placement::Residual {
            return None;
        }
        Some(Delta::fixed(self.adapters.get(layer, site)?.forward(&sum(), train), 1.0))
    }
}

impl Method for SequentialAdapter {
    fn name(&self) -> &str {
        self.name
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn trains_backbone(&self, name: &str) -> bool {
        self.config.train_layer_norm && is_layer_layer_norm(name)
    }
    fn identity(&self) -> Identity {
        // Near-identity: Δ is of order init_std² · m · |h|; LayerNorm keeps it small downstream.
        Identity::Approx(1e-3_f64.max(100.0 * self.config.init_std * self.config.init_std * self.width as f64))
    }
    fn formula_params(&self, d: &BackboneDims) -> i64 {
        let adapters = bottleneck_params(d, &self.config.sites, self.width);
        let norms = if self.config.train_layer_norm { d.layer_norm_params() } else { 0 };
        adapters + norms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Houlsby's adapter reads the sublayer output h; Pfeiffer's reads only the residual sum the backbone
    /// hands it (what that sum is on each backbone is pinned by pelt-backbone's residual_hook tests).
    #[test]
    fn pfeiffer_reads_the_residual_sum_and_houlsby_the_output() {
        let dims = BackboneDims { hidden: 8, layers: 2, heads: 2, intermediate: 16, ..Default::default() };
        let config = BottleneckConfig { bottleneck: 4.into(), ..BottleneckConfig::pfeiffer() };
        let pfeiffer = SequentialAdapter::pfeiffer(config.clone(), &dims, Device::Cpu).unwrap();
        let houlsby =
            SequentialAdapter::houlsby(BottleneckConfig { placement: Placement::Output, ..config }, &dims, Device::Cpu)
                .unwrap();
        let x = Tensor::randn([2, 3, 8], (tch::Kind::Float, Device::Cpu));
        let h = Tensor::randn([2, 3, 8], (tch::Kind::Float, Device::Cpu));
        let sum = Tensor::randn([2, 3, 8], (tch::Kind::Float, Device::Cpu));
        let site = Site::FfnOutput;
        assert!(pfeiffer.sublayer(1, site, &x, &h, false).is_none());
        let got = pfeiffer.residual_sublayer(1, site, &|| sum.shallow_clone(), false).unwrap().value;
        let want = pfeiffer.adapters.get(1, site).unwrap().forward(&sum, false);
        assert_eq!((got - want).abs().max().double_value(&[]), 0.0);
        assert!(houlsby.residual_sublayer(1, site, &|| panic!("Houlsby must not read the sum"), false).is_none());
        let got = houlsby.sublayer(1, site, &x, &h, false).unwrap().value;
        let want = houlsby.adapters.get(1, site).unwrap().forward(&h, false);
        assert_eq!((got - want).abs().max().double_value(&[]), 0.0);
    }

    /// The default placement stays out of the resolved config, so Houlsby's run hashes are unchanged.
    #[test]
    fn output_placement_is_not_serialised() {
        let houlsby = serde_yaml::to_string(&BottleneckConfig::default()).unwrap();
        assert!(!houlsby.contains("placement"), "{houlsby}");
        let pfeiffer = serde_yaml::to_string(&BottleneckConfig::pfeiffer()).unwrap();
        assert!(pfeiffer.contains("placement: residual"), "{pfeiffer}");
    }

    /// He et al.'s `Adapter_Layer` drops units after the ReLU; pelt's other adapters drop the input.
    /// Same seed, same masks: each form equals its formula, and the two differ.
    #[test]
    fn bottleneck_dropout_acts_where_it_is_placed() {
        let store = nn::VarStore::new(Device::Cpu);
        let at = |place| AdapterDropout { p: 0.5, at: place };
        let input = Bottleneck::new(
            store.root() / "a",
            8,
            6,
            BottleneckInit::TruncatedNormal(0.5),
            Activation::Relu,
            at(DropoutAt::Input),
        );
        let inner = Bottleneck {
            down_w: input.down_w.shallow_clone(),
            down_b: input.down_b.shallow_clone(),
            up_w: input.up_w.shallow_clone(),
            up_b: input.up_b.shallow_clone(),
            act: input.act,
            dropout: at(DropoutAt::Bottleneck),
        };
        let x = Tensor::randn([3, 4, 8], (tch::Kind::Float, Device::Cpu));
        let down = |x: &Tensor| x.linear(&input.down_w, Some(&input.down_b)).relu();
        let up = |m: &Tensor| m.linear(&input.up_w, Some(&input.up_b));
        let seeded = |f: &dyn Fn() -> Tensor| {
            pelt_core::manual_seed(11);
            f()
        };
        let gap = |a: Tensor, b: Tensor| (a - b).abs().max().double_value(&[]);
        assert_eq!(gap(seeded(&|| inner.forward(&x, true)), seeded(&|| up(&down(&x).drop_out(0.5, true)))), 0.0);
        assert_eq!(gap(seeded(&|| input.forward(&x, true)), seeded(&|| up(&down(&x.drop_out(0.5, true))))), 0.0);
        assert!(gap(seeded(&|| inner.forward(&x, true)), seeded(&|| input.forward(&x, true))) > 1e-3);
        // In evaluation neither drops anything.
        assert_eq!(gap(inner.forward(&x, false), input.forward(&x, false)), 0.0);
    }
}

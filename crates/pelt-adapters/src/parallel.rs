//! Parallel adapters (He et al. 2022, "Towards a Unified View of Parameter-Efficient Transfer
//! Learning"): Δ = s·up(f(down(x))) computed from the sublayer's input x and added to its output,
//! beside the sublayer rather than after it.

use crate::{
    config::{AdapterDropout, ParallelConfig},
    sequential::{bottleneck_params, bottlenecks, Bottleneck, BottleneckInit},
};
use pelt_core::{Attachment, BackboneDims, Delta, Identity, Method, Result, Site, SiteTable};
use tch::{nn, Device, Tensor};

/// Parallel adapters built under any path of a store (the parallel adapter methods own one; mixtures
/// build it beside their other parts).
#[derive(Debug)]
pub struct ParallelModule {
    config: ParallelConfig,
    /// One bottleneck per (layer, configured site).
    adapters: SiteTable<Bottleneck>,
}

impl ParallelModule {
    /// Adapters under `root`; the up-projection starts at zero (the reference code's "lora" init), so
    /// Δ = 0 at init.
    pub fn new(root: &nn::Path, config: ParallelConfig, dims: &BackboneDims) -> ParallelModule {
        let adapters = bottlenecks(
            root,
            dims,
            &config.sites,
            config.bottleneck.resolve(dims.hidden),
            BottleneckInit::Lora,
            config.activation,
            AdapterDropout { p: config.dropout, at: config.dropout_at },
        );
        ParallelModule { config, adapters }
    }

    /// Δ for the sublayer at `site`, from its input `x`.
    pub fn delta(&self, layer: usize, site: Site, x: &Tensor, train: bool) -> Option<Delta> {
        Some(Delta::fixed(self.adapters.get(layer, site)?.forward(x, train), self.config.scale))
    }

    /// Trainable parameters.
    pub fn params(&self, d: &BackboneDims) -> i64 {
        bottleneck_params(d, &self.config.sites, self.config.bottleneck.resolve(d.hidden))
    }
}

/// Parallel (or scaled parallel) adapters in every layer.
#[derive(Debug)]
pub struct ParallelAdapter {
    name: &'static str,
    vs: nn::VarStore,
    module: ParallelModule,
}

impl ParallelAdapter {
    /// The parallel adapter (`parallel_adapter`, s = 1 by default).
    pub fn plain(config: ParallelConfig, dims: &BackboneDims, device: Device) -> Result<ParallelAdapter> {
        ParallelAdapter::new("parallel_adapter", config, dims, device)
    }

    /// The scaled parallel adapter (`scaled_parallel_adapter`, s = 4 by default).
    pub fn scaled(config: ParallelConfig, dims: &BackboneDims, device: Device) -> Result<ParallelAdapter> {
        ParallelAdapter::new("scaled_parallel_adapter", config, dims, device)
    }

    /// Adapters registered under `name`, in their own store.
    pub fn new(
        name: &'static str,
        config: ParallelConfig,
        dims: &BackboneDims,
        device: Device,
    ) -> Result<ParallelAdapter> {
        let vs = nn::VarStore::new(device);
        let module = ParallelModule::new(&vs.root(), config, dims);
        Ok(ParallelAdapter { name, vs, module })
    }
}

impl Attachment for ParallelAdapter {
    fn sublayer(&self, layer: usize, site: Site, x: &Tensor, _h: &Tensor, train: bool) -> Option<Delta> {
        self.module.delta(layer, site, x, train)
    }
}

impl Method for ParallelAdapter {
    fn name(&self) -> &str {
        self.name
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::Exact
    }
    fn formula_params(&self, d: &BackboneDims) -> i64 {
        self.module.params(d)
    }
}

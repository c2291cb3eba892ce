//! Visual prompt tuning (Jia et al., "Visual Prompt Tuning", ECCV 2022): P learned tokens inserted after
//! the class token of a ViT. VPT-shallow inserts them once, before the first layer; VPT-deep gives every
//! layer its own P tokens, replacing the outputs of the previous layer's prompts, so each layer attends to
//! fresh learned positions.
//!
//! Init as the reference code: uniform in ±√(6 / (c·p² + d)) — Xavier over the patch projection's
//! fan-in c·p² (channels × patch area) and the width d; a text backbone, which has no patches, uses
//! ±√(6 / 2d). The methods also run on BERT, where the prompts go in front (deep prompt tuning of the
//! input positions).

use crate::config::VptConfig;
use pelt_core::{Attachment, BackboneDims, Dropout, Identity, Method, Result};
use tch::{nn, Device, Tensor};

/// VPT-shallow or VPT-deep.
#[derive(Debug)]
pub struct Vpt {
    name: &'static str,
    vs: nn::VarStore,
    config: VptConfig,
    /// (layers or 1, P, d).
    prompts: Tensor,
}

impl Vpt {
    /// VPT-shallow: P tokens before the first layer.
    pub fn shallow(config: VptConfig, dims: &BackboneDims, device: Device) -> Result<Vpt> {
        Vpt::build("vpt_shallow", 1, config, dims, device)
    }

    /// VPT-deep: P tokens for every layer.
    pub fn deep(config: VptConfig, dims: &BackboneDims, device: Device) -> Result<Vpt> {
        Vpt::build("vpt_deep", dims.layers, config, dims, device)
    }

    fn build(name: &'static str, depth: i64, config: VptConfig, dims: &BackboneDims, device: Device) -> Result<Vpt> {
        let vs = nn::VarStore::new(device);
        let fan_in = dims.image.map_or(dims.hidden, |i| i.channels * i.patch * i.patch);
        let bound = (6.0 / (fan_in + dims.hidden) as f64).sqrt();
        let prompts =
            vs.root().var("prompts", &[depth, config.length, dims.hidden], nn::Init::Uniform { lo: -bound, up: bound });
        Ok(Vpt { name, vs, config, prompts })
    }

    fn layer(&self, layer: i64, batch: i64, train: bool) -> Tensor {
        self.prompts.get(layer).unsqueeze(0).expand([batch, -1, -1], false).drop_out(self.config.dropout, train)
    }
}

impl Attachment for Vpt {
    fn prompt(&self, embeddings: &Tensor, _mask: &Tensor, train: bool) -> Option<Tensor> {
        Some(self.layer(0, embeddings.size()[0], train))
    }

    fn layer_prompt(&self, layer: usize, batch: i64, train: bool) -> Option<Tensor> {
        let depth = self.prompts.size()[0];
        (depth > 1 && (layer as i64) < depth).then(|| self.layer(layer as i64, batch, train))
    }
}

impl Method for Vpt {
    fn name(&self) -> &str {
        self.name
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        self.prompts.size()[0] * self.config.length * dims.hidden
    }
}

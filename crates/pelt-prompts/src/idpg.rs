//! IDPG, the input-dependent prefix: a task prefix (prefix tuning's, with its MLP reparameterisation)
//! plus P_x positions generated from the input itself, so that each example gets keys and values of its
//! own — the idea of instance-dependent prompt generation (IDPG, Wu et al., NAACL 2022) and of
//! control prefixes (Clive et al. 2021), placed in every layer's attention as prefix tuning does.
//!
//! The generator reads x̂, the mean of the embedding block's output over the example's real tokens
//! (padding never enters), and produces P_x embeddings E_x = reshape(W₂ tanh(W₁ x̂ + b₁) + b₂); they go
//! through the task prefix's own MLP, so instance positions live in the same space as the task's. The
//! backbone sees [task prefix; instance prefix] as extra keys and values in every layer. The task part
//! could be folded after training; the instance part cannot, as it depends on the input.
//!
//! On an encoder-decoder it sits in the encoder's layers only (its instance part is generated from
//! the encoder's input).
//!
//! Registered as `pcg` until 2026-12-07, when PCG as published (Luo et al. 2022, data-to-text) took
//! that name; its runs keep their hashes (see `pelt_runner::sweep::config_hash`).

use crate::{
    config::IdpgConfig,
    prefix::{batched_layer_kv, PrefixModule},
};
use pelt_core::{Attachment, Backbone, BackboneDims, Identity, Method, Prefix, Result};
use std::cell::RefCell;
use tch::{nn, Device, Kind, Tensor};

/// Task prefix + generated instance prefix in every layer.
#[derive(Debug)]
pub struct Idpg {
    vs: nn::VarStore,
    config: IdpgConfig,
    dims: BackboneDims,
    task: PrefixModule,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    /// Every layer's keys and values for the current batch, (batch, P + P_x, L·2·d), computed when the
    /// backbone hands over the embedded input and reused by every layer of the pass.
    current: RefCell<Option<Tensor>>,
}

impl Idpg {
    /// Builds the task prefix and the generator (nn.Linear's init).
    pub fn new(config: IdpgConfig, dims: &BackboneDims, device: Device) -> Result<Idpg> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        // The encoder's layers only: the instance prefix is generated from the encoder's input, and a
        // decoder's rows (a beam's hypotheses) need not be that input's examples.
        let dims = &BackboneDims { layers: dims.layers - dims.decoder_layers, decoder_layers: 0, ..dims.clone() };
        let task = PrefixModule::new(&root / "task", config.prefix.clone(), dims);
        let g = &root / "generator";
        let (d, k, px) = (dims.hidden, config.generator_dim, config.input_length);
        let linear = |name: &str, i: i64, o: i64| {
            let bound = 1.0 / (i as f64).sqrt();
            (
                g.var(&format!("{name}_weight"), &[o, i], nn::Init::Uniform { lo: -bound, up: bound }),
                g.var(&format!("{name}_bias"), &[o], nn::Init::Uniform { lo: -bound, up: bound }),
            )
        };
        let (w1, b1) = linear("down", d, k);
        let (w2, b2) = linear("up", k, px * d);
        Ok(Idpg { vs, config, dims: dims.clone(), task, w1, b1, w2, b2, current: RefCell::new(None) })
    }
}

impl Attachment for Idpg {
    /// Adds no positions: reads the embedded input and its mask to generate this batch's prefix.
    fn prompt(&self, embeddings: &Tensor, mask: &Tensor, _train: bool) -> Option<Tensor> {
        let (b, _, d) = embeddings.size3().expect("(batch, len, d)");
        let real = mask.to_kind(Kind::Float).unsqueeze(-1);
        let pooled = (embeddings * &real).sum_dim_intlist([1].as_slice(), false, Kind::Float)
            / real.sum_dim_intlist([1].as_slice(), false, Kind::Float).clamp_min(1.0);
        let generated = pooled.linear(&self.w1, Some(&self.b1)).tanh().linear(&self.w2, Some(&self.b2)).view([
            b,
            self.config.input_length,
            d,
        ]);
        let instance = self.task.reparameterise(&generated);
        let task = self.task.reparameterise(&self.task.embedding()).unsqueeze(0).expand([b, -1, -1], false);
        *self.current.borrow_mut() = Some(Tensor::cat(&[task, instance], 1));
        None
    }

    fn prefix(&self, layer: usize, x: &Tensor, _train: bool) -> Option<Prefix> {
        if layer as i64 >= self.dims.layers {
            return None;
        }
        let current = self.current.borrow();
        let all = current.as_ref().filter(|a| a.size()[0] == x.size()[0])?;
        let (keys, values) = batched_layer_kv(all, layer, &self.dims);
        Some(Prefix { keys, values, gate: None })
    }
}

impl Method for Idpg {
    fn name(&self) -> &str {
        "idpg"
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn identity(&self) -> Identity {
        Identity::None
    }
    fn formula_params(&self, dims: &BackboneDims) -> i64 {
        let (d, k, px) = (dims.hidden, self.config.generator_dim, self.config.input_length);
        self.task.params() + (d * k + k) + (k * px * d + px * d)
    }
    fn init_from(&self, backbone: &dyn Backbone) {
        self.task.init_from(backbone);
    }
    fn diagnostics(&self) -> Vec<(String, f64)> {
        self.task.diagnostics()
    }
}

//! A reparameterised method merged into the frozen weights for the length of an evaluation.
//!
//! LoRA-style methods add ΔW·x at their projections; with no gradients needed, W + ΔW computes the same
//! in one product instead of three (their branch cost LoRA's evaluation passes about 15% over the bare
//! model's). The merge writes into the backbone's own weight tensors (shared storage) and the original
//! values come back, copied bit for bit, when the guard drops, so training continues on exactly the
//! weights it had.

use crate::{
    backbone::{Backbone, BackboneDims, Encoded, Inputs},
    method::{Attachment, Method},
    site::Site,
    PeltError, Result,
};
use tch::{nn::VarStore, Tensor};

/// While alive, `method` is merged into the backbone's weights: evaluate with [`crate::NoMethod`].
/// Dropping it restores the weights exactly.
#[derive(Debug)]
pub struct EvalMerge {
    /// (the weight, its values before the merge), in merge order.
    saved: Vec<(Tensor, Tensor)>,
}

impl EvalMerge {
    /// Merges `method` into `backbone`'s weights when the method is reparameterised
    /// ([`Method::merge_into`] says so) and the backbone exposes every projection it touches
    /// ([`Backbone::projection_weight`]); `None` otherwise, with nothing changed.
    pub fn new(backbone: &dyn Backbone, method: &dyn Method) -> Option<EvalMerge> {
        let mut shared = Shared { inner: backbone, saved: Vec::new() };
        let merged = tch::no_grad(|| method.merge_into(&mut shared));
        let guard = EvalMerge { saved: shared.saved };
        // A merge that stopped part way (or merged nothing) is undone when the guard drops here.
        matches!(merged, Ok(true)).then_some(guard)
    }
}

/// The method's evaluation form: `(guard, attachment)` with the method merged and [`crate::NoMethod`]
/// attached while the guard lives, or no guard and the method itself where it does not merge. Every
/// evaluation loop takes its attachment from here.
pub fn for_evaluation<'a>(backbone: &dyn Backbone, method: &'a dyn Method) -> (Option<EvalMerge>, &'a dyn Attachment) {
    static BARE: crate::NoMethod = crate::NoMethod;
    match EvalMerge::new(backbone, method) {
        Some(merged) => (Some(merged), &BARE),
        None => (None, method),
    }
}

impl Drop for EvalMerge {
    fn drop(&mut self) {
        tch::no_grad(|| {
            for (weight, original) in self.saved.iter_mut().rev() {
                weight.copy_(original);
            }
        });
    }
}

/// The backbone seen through `&self`: merges go into its shared weight tensors and are recorded.
struct Shared<'a> {
    inner: &'a dyn Backbone,
    saved: Vec<(Tensor, Tensor)>,
}

impl Backbone for Shared<'_> {
    fn dims(&self) -> &BackboneDims {
        self.inner.dims()
    }

    fn var_store(&self) -> &VarStore {
        self.inner.var_store()
    }

    fn forward(&self, inputs: &Inputs, method: &dyn Attachment, train: bool) -> Encoded {
        self.inner.forward(inputs, method, train)
    }

    fn merge_projection(&mut self, layer: usize, site: Site, delta_w: &Tensor) -> Result<()> {
        let mut weight = self
            .inner
            .projection_weight(layer, site)
            .ok_or_else(|| PeltError::Shape(format!("no shared weight for `{site}` of layer {layer}")))?;
        if weight.size() != delta_w.size() {
            return Err(PeltError::Shape(format!(
                "ΔW for {site} of layer {layer} is {:?}, the weight is {:?}",
                delta_w.size(),
                weight.size()
            )));
        }
        self.saved.push((weight.shallow_clone(), weight.copy()));
        let _ = tch::no_grad(|| weight.f_add_(delta_w))?;
        Ok(())
    }

    fn projection_weight(&self, layer: usize, site: Site) -> Option<Tensor> {
        self.inner.projection_weight(layer, site)
    }

    fn projection_bias(&self, layer: usize, site: Site) -> Option<Tensor> {
        self.inner.projection_bias(layer, site)
    }

    fn merge_projection_bias(&mut self, layer: usize, site: Site, delta_b: &Tensor) -> Result<()> {
        let mut bias = self
            .inner
            .projection_bias(layer, site)
            .ok_or_else(|| PeltError::Shape(format!("no shared bias for `{site}` of layer {layer}")))?;
        if bias.size() != delta_b.size() {
            return Err(PeltError::Shape(format!("Δb for {site} of layer {layer} is {:?}", delta_b.size())));
        }
        self.saved.push((bias.shallow_clone(), bias.copy()));
        let _ = tch::no_grad(|| bias.f_add_(delta_b))?;
        Ok(())
    }
}

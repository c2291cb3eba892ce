//! AdamW (Loshchilov & Hutter 2019) over named tensors from several stores, with global-norm clipping.
//!
//! tch's optimizers are built from one VarStore; pelt's trainable set spans the backbone (selective
//! methods), the method's store and the head's, so the update is written here, in place.

use tch::Tensor;

struct Slot {
    name: String,
    param: Tensor,
    m: Tensor,
    v: Tensor,
    decay: bool,
    /// This tensor's learning rate as a multiple of the schedule's.
    lr_scale: f64,
    /// This tensor's weight decay when it has its own.
    own_decay: Option<f64>,
}

/// AdamW with β = (0.9, 0.999), ε = 1e-8; no weight decay on biases and LayerNorm parameters (the
/// usual BERT fine-tuning practice).
pub struct AdamW {
    slots: Vec<Slot>,
    weight_decay: f64,
    t: i32,
}

impl AdamW {
    /// State for `params` (named; names decide decay). Tensors without `requires_grad` are skipped.
    pub fn new(params: &[(String, Tensor)], weight_decay: f64) -> AdamW {
        let slots = params
            .iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, t)| Slot {
                name: name.clone(),
                param: t.shallow_clone(),
                m: t.zeros_like(),
                v: t.zeros_like(),
                decay: !(name.ends_with("bias") || name.contains("LayerNorm")),
                lr_scale: 1.0,
                own_decay: None,
            })
            .collect();
        AdamW { slots, weight_decay, t: 0 }
    }

    /// Gives the tensors whose names start with `prefix` `scale` times the learning rate (a task
    /// head's or a decoder's new parts' own rate).
    pub fn scale_group(mut self, prefix: &str, scale: f64) -> AdamW {
        for slot in self.slots.iter_mut().filter(|s| s.name.starts_with(prefix)) {
            slot.lr_scale = scale;
        }
        self
    }

    /// Gives the method's variables (named `method.<name>`) the rates the method asks for
    /// ([`pelt_core::Method::own_rate`]), relative to the run's peak rate `peak`.
    pub fn method_rates(mut self, method: &dyn pelt_core::Method, peak: f64) -> AdamW {
        for slot in &mut self.slots {
            let own = slot.name.strip_prefix("method.").and_then(|n| method.own_rate(n));
            if let Some(r) = own {
                slot.lr_scale = r.lr / peak;
                slot.own_decay = r.weight_decay;
            }
        }
        self
    }

    /// Clears gradients.
    pub fn zero_grad(&mut self) {
        for s in &self.slots {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.slots.iter().map(|s| s.param.grad()).filter(Tensor::defined).collect();
            if grads.is_empty() {
                return 0.0;
            }
            let total = Tensor::stack(&grads.iter().map(|g| g.square().sum(tch::Kind::Float)).collect::<Vec<_>>(), 0)
                .sum(tch::Kind::Float)
                .sqrt()
                .double_value(&[]);
            if total > max_norm {
                let scale = max_norm / (total + 1e-6);
                for mut g in grads {
                    let _ = g.g_mul_scalar_(scale);
                }
            }
            total
        })
    }

    /// One training step on `loss`: a loss that is not finite is returned as `Err` (the run diverged)
    /// and nothing changes; otherwise gradients are cleared, back-propagated, passed through the
    /// method's `after_backward` (gradient masks), clipped to `max_norm`, and applied at `lr`. Returns
    /// the loss.
    pub fn train_step(
        &mut self,
        loss: &Tensor,
        method: &dyn pelt_core::Method,
        max_norm: f64,
        lr: f64,
    ) -> Result<f64, f64> {
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            return Err(value);
        }
        self.zero_grad();
        loss.backward();
        method.after_backward();
        self.clip_grad_norm(max_norm);
        self.step(lr);
        Ok(value)
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        if lr <= 0.0 {
            return;
        }
        let (b1, b2, eps): (f64, f64, f64) = (0.9, 0.999, 1e-8);
        self.t += 1;
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2 = 1.0 - b2.powi(self.t);
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                let lr = lr * s.lr_scale;
                // In place wherever libtorch allows: the update touches every trainable weight each
                // step, so temporaries cost as much memory traffic as the arithmetic.
                let decay = s.own_decay.unwrap_or(if s.decay { self.weight_decay } else { 0.0 });
                if decay > 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * decay);
                }
                let _ = s.m.lerp_(&g, 1.0 - b1);
                let _ = s.v.lerp_(&g.square(), 1.0 - b2);
                // p −= (lr / bc1) · m / (√v / √bc2 + ε), folded into one addcdiv_.
                let mut denom = s.v.sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt());
                let _ = denom.g_add_scalar_(eps);
                let _ = denom.g_mul_scalar_(-bc1 / lr);
                let _ = s.param.addcdiv_(&s.m, &denom);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_weight_by_lr_against_its_gradient_sign() {
        let w = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[0.5f32]).set_requires_grad(true);
        let mut opt = AdamW::new(&[("w".into(), w.shallow_clone()), ("x.bias".into(), b.shallow_clone())], 0.1);
        let loss = (&w * Tensor::from_slice(&[3.0f32, -1.0])).sum(tch::Kind::Float) + (&b * 2.0).sum(tch::Kind::Float);
        loss.backward();
        opt.step(0.01);
        // Adam's first step is lr·sign(g); decoupled decay shrinks w by (1 − lr·wd) first, not b.
        let w: Vec<f32> = Vec::try_from(&w.detach()).unwrap();
        assert!((w[0] - (1.0 * 0.999 - 0.01)).abs() < 1e-5, "{w:?}");
        assert!((w[1] - (-2.0 * 0.999 + 0.01)).abs() < 1e-5, "{w:?}");
        let b: Vec<f32> = Vec::try_from(&b.detach()).unwrap();
        assert!((b[0] - 0.49).abs() < 1e-5, "{b:?}");
    }

    #[test]
    fn a_group_moves_at_its_own_rate() {
        let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let h = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let params = [("method.w".into(), w.shallow_clone()), ("head.w".into(), h.shallow_clone())];
        let mut opt = AdamW::new(&params, 0.0).scale_group("head.", 10.0);
        (&w + &h).sum(tch::Kind::Float).backward();
        opt.step(0.01);
        assert!((w.double_value(&[0]) - 0.99).abs() < 1e-6);
        assert!((h.double_value(&[0]) - 0.9).abs() < 1e-6);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let w = Tensor::from_slice(&[0.0f32, 0.0]).set_requires_grad(true);
        let mut opt = AdamW::new(&[("w".into(), w.shallow_clone())], 0.0);
        (&w * Tensor::from_slice(&[3.0f32, 4.0])).sum(tch::Kind::Float).backward();
        assert!((opt.clip_grad_norm(1.0) - 5.0).abs() < 1e-6);
        let g: Vec<f32> = Vec::try_from(&w.grad()).unwrap();
        assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5, "{g:?}");
    }
}

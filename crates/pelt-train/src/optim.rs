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
    /// Updates this tensor has had: its own bias correction, as torch's per-parameter `step`, so a
    /// tensor that sat out steps (see [`AdamW::skipping_unused`]) is corrected for its own count.
    t: i32,
}

/// AdamW with β = (0.9, 0.999), ε = 1e-8; no weight decay on biases and LayerNorm parameters (the
/// usual BERT fine-tuning practice).
pub struct AdamW {
    slots: Vec<Slot>,
    weight_decay: f64,
    /// Whether gradients are dropped after each step instead of zeroed before the next.
    skip_unused: bool,
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
                t: 0,
            })
            .collect();
        AdamW { slots, weight_decay, skip_unused: false }
    }

    /// Leaves out of each step the tensors its loss did not reach, as VL-T5's multi-task trainer (which
    /// VL-Adapter trains with) does by setting every `param.grad = None` after a step: with one task per
    /// batch, another task's classifier or a decoder a question batch never runs then gets neither a
    /// momentum step nor weight decay, where a zeroed gradient would give it both. With every tensor in
    /// every step's graph (any single-task run) the updates are the same either way.
    pub fn skipping_unused(mut self) -> AdamW {
        self.skip_unused = true;
        self
    }

    /// Drops every gradient (see [`AdamW::skipping_unused`]).
    fn forget_grads(&mut self) {
        for s in &mut self.slots {
            if s.param.grad().defined() {
                assert!(pelt_amp::forget_grad(&mut s.param), "libtorch refused to drop {}'s gradient", s.name);
            }
        }
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
        let total = self.grad_norm();
        let scale = clip_factor(total, max_norm);
        if scale != 1.0 {
            tch::no_grad(|| {
                for s in &self.slots {
                    let mut g = s.param.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(scale);
                    }
                }
            });
        }
        total
    }

    /// The global L2 norm of the gradients. On the CPU one pass in f64 over fixed chunks, summed in a
    /// fixed order, so the same gradients give the same norm whatever the thread count.
    pub fn grad_norm(&self) -> f64 {
        let mut sum = 0.0;
        tch::no_grad(|| {
            let mut host = Vec::new();
            for s in &self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                match host_f32(&g) {
                    Some(slice) => host.push(slice),
                    None => sum += g.square().sum(tch::Kind::Double).double_value(&[]),
                }
            }
            sum += fused::sum_squares(&host);
        });
        sum.sqrt()
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
        let loss = with_regularizer(loss, method);
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            return Err(value);
        }
        self.zero_grad();
        loss.backward();
        method.after_backward();
        self.apply(max_norm, lr);
        method.after_step();
        if self.skip_unused {
            self.forget_grads();
        }
        Ok(value)
    }

    /// [`AdamW::train_step`] for fp16: back-propagates the loss times the scaler's scale, takes the norm
    /// of the gradients unscaled, and, when it is finite, applies them clipped and unscaled in one pass
    /// (the unscaling folds into the update's factor); an overflow skips the step and halves the scale.
    /// Returns the loss.
    pub fn train_step_scaled(
        &mut self,
        loss: &Tensor,
        method: &dyn pelt_core::Method,
        max_norm: f64,
        lr: f64,
        scaler: &mut pelt_amp::GradScaler,
    ) -> Result<f64, f64> {
        let loss = with_regularizer(loss, method);
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            return Err(value);
        }
        self.zero_grad();
        let scale = scaler.scale();
        (loss * scale).backward();
        method.after_backward();
        self.apply_scaled(max_norm, lr, scaler);
        method.after_step();
        if self.skip_unused {
            self.forget_grads();
        }
        Ok(value)
    }

    /// [`AdamW::apply`] for gradients that are the scaler's scale times the true ones (fp16's scaled
    /// loss): the unscaled norm decides whether the step overflowed (then it is skipped and the scale
    /// halved), and the unscaling folds into the update's factor. Returns the unscaled norm.
    pub fn apply_scaled(&mut self, max_norm: f64, lr: f64, scaler: &mut pelt_amp::GradScaler) -> f64 {
        let scale = scaler.scale();
        let norm = self.grad_norm() / scale;
        if scaler.update(norm) {
            self.update(lr, clip_factor(norm, max_norm) / scale);
        }
        norm
    }

    /// The update from the gradients in place: clipped to global norm `max_norm`, applied at `lr`.
    /// Returns the norm before clipping.
    pub fn apply(&mut self, max_norm: f64, lr: f64) -> f64 {
        // The clipping factor goes into the update itself instead of a pass that rescales the
        // gradients in memory first.
        let norm = self.grad_norm();
        self.update(lr, clip_factor(norm, max_norm));
        norm
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.update(lr, 1.0);
    }

    /// One update with learning rate `lr` on the gradients times `clip`. Float32 tensors in CPU memory
    /// are updated by one fused pass per element (read p, g, m, v; write p, m, v), split over two
    /// threads when large; others (a GPU's) by libtorch's elementwise operations, the same formula.
    fn update(&mut self, lr: f64, clip: f64) {
        if lr <= 0.0 {
            return;
        }
        let (b1, b2, eps): (f64, f64, f64) = (0.9, 0.999, 1e-8);
        tch::no_grad(|| {
            let mut host = Vec::new();
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                s.t += 1;
                let bc1 = 1.0 - b1.powi(s.t);
                let bc2 = 1.0 - b2.powi(s.t);
                let lr = lr * s.lr_scale;
                let decay = s.own_decay.unwrap_or(if s.decay { self.weight_decay } else { 0.0 });
                let hyper = fused::Hyper {
                    shrink: (1.0 - lr * decay) as f32,
                    clip: clip as f32,
                    b1: (1.0 - b1) as f32,
                    b2: (1.0 - b2) as f32,
                    bc2_sqrt: bc2.sqrt() as f32,
                    eps: eps as f32,
                    step: (lr / bc1) as f32,
                };
                let slices = (host_f32(&s.param), host_f32(&g), host_f32(&s.m), host_f32(&s.v));
                if let (Some(p), Some(g), Some(m), Some(v)) = slices {
                    host.push(fused::Slot { p, g, m, v, hyper });
                    continue;
                }
                let g = if clip != 1.0 { &g * clip } else { g };
                if decay > 0.0 {
                    let _ = s.param.g_mul_scalar_(1.0 - lr * decay);
                }
                let _ = s.m.lerp_(&g, 1.0 - b1);
                let _ = s.v.lerp_(&g.square(), 1.0 - b2);
                let mut denom = s.v.sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt());
                let _ = denom.g_add_scalar_(eps);
                let _ = denom.g_mul_scalar_(-bc1 / lr);
                let _ = s.param.addcdiv_(&s.m, &denom);
            }
            fused::adamw(&host);
        });
    }
}

/// The factor that brings a gradient norm down to `max_norm` (1 when it is already within; a norm
/// that is not finite is left alone, as the loss check catches divergence).
fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// A CPU float32 tensor's elements, when it is contiguous (every parameter and its moments are).
fn host_f32(t: &Tensor) -> Option<fused::Host> {
    (t.device() == tch::Device::Cpu && t.kind() == tch::Kind::Float && t.is_contiguous())
        .then(|| fused::Host { ptr: t.data_ptr() as *mut f32, len: t.numel() })
}

/// The optimizer's loops over raw CPU memory.
mod fused {
    /// A contiguous f32 buffer owned by a tensor that outlives the call using it.
    #[derive(Clone, Copy)]
    pub(super) struct Host {
        pub(super) ptr: *mut f32,
        pub(super) len: usize,
    }

    // SAFETY: the buffers belong to tensors that live through the (scoped) threads' work, and each
    // thread touches a disjoint range of them.
    unsafe impl Send for Host {}
    unsafe impl Sync for Host {}

    /// The per-tensor constants of one AdamW update, in f32 as libtorch's float kernels use them.
    #[derive(Clone, Copy)]
    pub(super) struct Hyper {
        pub(super) shrink: f32,
        pub(super) clip: f32,
        pub(super) b1: f32,
        pub(super) b2: f32,
        pub(super) bc2_sqrt: f32,
        pub(super) eps: f32,
        pub(super) step: f32,
    }

    /// A parameter with its gradient and moments.
    pub(super) struct Slot {
        pub(super) p: Host,
        pub(super) g: Host,
        pub(super) m: Host,
        pub(super) v: Host,
        pub(super) hyper: Hyper,
    }

    /// Elements per work item: work is cut at the same places whatever the thread count.
    const CHUNK: usize = 1 << 16;
    /// Below this many elements in all, one thread does everything (thread start-up would cost more).
    const PARALLEL: usize = 1 << 20;

    /// (buffer index, start, end) work items over buffers of the given lengths.
    fn items(lens: impl Iterator<Item = usize>) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (i, len) in lens.enumerate() {
            let mut at = 0;
            while at < len {
                out.push((i, at, (at + CHUNK).min(len)));
                at += CHUNK;
            }
        }
        out
    }

    /// Runs `work` on every item, on two threads when the items hold many elements, and returns the
    /// results in item order.
    fn run<T: Send>(items: &[(usize, usize, usize)], work: impl Fn(&(usize, usize, usize)) -> T + Sync) -> Vec<T> {
        let total: usize = items.iter().map(|(_, a, b)| b - a).sum();
        if total < PARALLEL || items.len() < 2 {
            return items.iter().map(&work).collect();
        }
        let (first, second) = items.split_at(items.len() / 2);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| second.iter().map(&work).collect::<Vec<T>>());
            let mut out: Vec<T> = first.iter().map(&work).collect();
            out.extend(other.join().expect("optimizer worker panicked"));
            out
        })
    }

    /// Σ x² over every buffer, in f64, summed chunk by chunk in a fixed order.
    pub(super) fn sum_squares(buffers: &[Host]) -> f64 {
        let items = items(buffers.iter().map(|b| b.len));
        let parts = run(&items, |&(i, a, b)| {
            // SAFETY: a..b lies within buffer i, which is only read here.
            let x = unsafe { std::slice::from_raw_parts(buffers[i].ptr.add(a), b - a) };
            x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
        });
        parts.iter().sum()
    }

    /// The AdamW update of every slot: p ← p·shrink; m ← m + b1·(g − m); v ← v + b2·(g² − v);
    /// p ← p − step · m / (√v / √bc2 + ε), with g the gradient times `clip` (libtorch's lerp and
    /// addcdiv in one pass).
    pub(super) fn adamw(slots: &[Slot]) {
        let items = items(slots.iter().map(|s| s.p.len));
        run(&items, |&(i, a, b)| {
            let s = &slots[i];
            // SAFETY: a..b lies within the slot's four buffers (same length); items are disjoint, and
            // the gradient is only read.
            unsafe {
                let p = std::slice::from_raw_parts_mut(s.p.ptr.add(a), b - a);
                let g = std::slice::from_raw_parts(s.g.ptr.add(a), b - a);
                let m = std::slice::from_raw_parts_mut(s.m.ptr.add(a), b - a);
                let v = std::slice::from_raw_parts_mut(s.v.ptr.add(a), b - a);
                update(p, g, m, v, &s.hyper);
            }
        });
    }

    #[inline(always)]
    fn kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &Hyper) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * h.clip;
            *m += h.b1 * (g - *m);
            *v += h.b2 * (g * g - *v);
            let denom = v.sqrt() / h.bc2_sqrt + h.eps;
            *p = *p * h.shrink - h.step * (*m / denom);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn kernel_avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &Hyper) {
        kernel(p, g, m, v, h)
    }

    fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &Hyper) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2, checked just above.
            unsafe { kernel_avx2(p, g, m, v, h) };
            return;
        }
        kernel(p, g, m, v, h)
    }
}

/// The loss with the method's regularizer added (the loss itself when it has none).
fn with_regularizer(loss: &Tensor, method: &dyn pelt_core::Method) -> Tensor {
    match method.regularizer() {
        Some(r) => loss + r,
        None => loss.shallow_clone(),
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
    fn skipping_unused_leaves_a_tensor_the_loss_missed_alone_and_corrects_it_for_its_own_steps() {
        // A method with no parameters of its own: the step's tensors are the two below.
        struct Nothing(tch::nn::VarStore);
        impl pelt_core::Attachment for Nothing {}
        impl pelt_core::Method for Nothing {
            fn name(&self) -> &str {
                "nothing"
            }
            fn var_store(&self) -> &tch::nn::VarStore {
                &self.0
            }
            fn identity(&self) -> pelt_core::Identity {
                pelt_core::Identity::Exact
            }
            fn formula_params(&self, _: &pelt_core::BackboneDims) -> i64 {
                0
            }
        }
        let method: Box<dyn pelt_core::Method> = Box::new(Nothing(tch::nn::VarStore::new(tch::Device::Cpu)));
        let run = |skip: bool| {
            let a = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
            let b = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
            let mut opt = AdamW::new(&[("a".into(), a.shallow_clone()), ("b".into(), b.shallow_clone())], 0.1);
            if skip {
                opt = opt.skipping_unused();
            }
            // Step 1 reaches both; steps 2 and 3 only `a` (another task's batches); step 4 `b` again.
            opt.train_step(&(&a + &b).sum(tch::Kind::Float), method.as_ref(), 1e9, 0.01).unwrap();
            let after_first = b.double_value(&[0]);
            for _ in 0..2 {
                opt.train_step(&(&a * 2.0).sum(tch::Kind::Float), method.as_ref(), 1e9, 0.01).unwrap();
            }
            let before_last = b.double_value(&[0]);
            opt.train_step(&(&b * 3.0).sum(tch::Kind::Float), method.as_ref(), 1e9, 0.01).unwrap();
            (after_first, before_last, b.double_value(&[0]))
        };
        let (first, idle, last) = run(true);
        assert_eq!(first, idle, "b sat out two steps untouched");
        // Its second update (gradient 3) is its own step 2, bias-corrected for 2 steps, not 4:
        // m = 0.9·0.1 + 0.1·3 = 0.39, v = 0.999·0.001 + 0.001·9 = 0.009999, after decay (1 − 0.001).
        let (m_hat, v_hat) = (0.39 / (1.0 - 0.9f64.powi(2)), 0.009999 / (1.0 - 0.999f64.powi(2)));
        let want = idle * 0.999 - 0.01 * m_hat / v_hat.sqrt();
        assert!((last - want).abs() < 1e-6, "{last} vs {want}");
        let (_, idle, _) = run(false);
        assert!(idle < first, "with zeroed gradients momentum and decay keep moving b: {idle} vs {first}");
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
    fn the_fused_update_matches_adamw_in_f64_on_two_threads() {
        // 3·2²⁰ elements: enough for the update and the norm to split across two threads.
        tch::manual_seed(1);
        let opts = (tch::Kind::Float, tch::Device::Cpu);
        let n = 3 << 20;
        let w = Tensor::randn([n], opts).set_requires_grad(true);
        let w0 = w.detach().copy();
        let g = Tensor::randn([n], opts);
        (&w * &g).sum(tch::Kind::Float).backward();
        let mut opt = AdamW::new(&[("w".into(), w.shallow_clone())], 0.1);
        let f64_norm = g.to_kind(tch::Kind::Double).square().sum(tch::Kind::Double).sqrt().double_value(&[]);
        assert!((opt.grad_norm() / f64_norm - 1.0).abs() < 1e-12, "the norm is summed in f64");
        let (lr, clip) = (1e-3, 1.0 / (f64_norm + 1e-6));
        assert!((opt.apply(1.0, lr) - f64_norm).abs() < 1e-6 * f64_norm);
        // Step 1 in f64: bias corrections 0.1 and 0.001, decay 0.1, the gradient clipped to norm 1.
        let gc = g.to_kind(tch::Kind::Double) * clip;
        let (m, v) = (&gc * 0.1, gc.square() * 0.001);
        let expected =
            w0.to_kind(tch::Kind::Double) * (1.0 - lr * 0.1) - (m / (v.sqrt() / 0.001f64.sqrt() + 1e-8)) * (lr / 0.1);
        let diff = (w.detach().to_kind(tch::Kind::Double) - expected).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "largest difference from the f64 update {diff}");
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

//! Dropout with masks drawn by pelt, in parallel, from a counter-based generator.
//!
//! libtorch draws CPU dropout masks with `bernoulli_`, which on non-Intel processors runs serially
//! through one Mersenne Twister (its MKL path is taken on Intel only): a profile of a LoRA training step
//! on an AMD EPYC showed 14% of all samples in that kernel and as much again in the other thread waiting
//! for it. Here each mask element is a hash of (run seed, call number, element index), eight lanes at a
//! time in AVX2, and the same seed gives the same masks run after run. The masked tensor is `x · mask`, mask ∈ {0, 1/(1 − p)}, which is what
//! libtorch's CPU dropout computes too (its gradient is the mask). CUDA tensors keep libtorch's fused
//! dropout kernel.

use std::sync::atomic::{AtomicU64, Ordering};
use tch::{Device, Kind, Tensor};

/// The run's key, set by [`manual_seed`].
static KEY: AtomicU64 = AtomicU64::new(0x0005_eed0_fd20_9041);
/// Dropout calls since the last [`manual_seed`]; each call draws from its own stream.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Seeds libtorch's generator and pelt's dropout masks: everything random in a run follows from `seed`.
pub fn manual_seed(seed: i64) {
    tch::manual_seed(seed);
    KEY.store(mix64(seed as u64 ^ 0xd20_9041_5eed), Ordering::SeqCst);
    CALLS.store(0, Ordering::SeqCst);
}

/// SplitMix64's finaliser.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// MurmurHash3's 32-bit finaliser: a bijection of u32 with full avalanche, cheap in SIMD lanes.
#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Fills `out` (one call's mask) with `keep` where the element's draw is at least
/// `threshold` (of 2³²), else 0. Two keyed rounds of [`fmix32`] make every call's stream a different
/// permutation of the indices.
#[inline(always)]
fn fill(out: &mut [f32], k1: u32, k2: u32, threshold: u32, keep: f32) {
    for (i, o) in out.iter_mut().enumerate() {
        let r = fmix32(fmix32(i as u32 ^ k1) ^ k2);
        *o = if r >= threshold { keep } else { 0.0 };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(out: &mut [f32], k1: u32, k2: u32, threshold: u32, keep: f32) {
    fill(out, k1, k2, threshold, keep)
}

fn fill_fast(out: &mut [f32], k1: u32, k2: u32, threshold: u32, keep: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2, checked just above.
        unsafe { fill_avx2(out, k1, k2, threshold, keep) };
        return;
    }
    fill(out, k1, k2, threshold, keep)
}

/// A dropout mask shaped like `like`: each element 1/(1 − p) with probability 1 − p, else 0. Element
/// indices are 32-bit: a mask of more than 2³² elements reuses its draws.
pub fn mask(like: &Tensor, p: f64) -> Tensor {
    let n = like.numel();
    let stream = mix64(KEY.load(Ordering::Relaxed) ^ CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9));
    let (k1, k2) = (stream as u32, (stream >> 32) as u32);
    // Keep when the 32-bit draw is at least p·2³²: P(keep) = 1 − p to within 2⁻³².
    let threshold = (p * 4_294_967_296.0).min(4_294_967_295.0) as u32;
    let keep = (1.0 / (1.0 - p)) as f32;
    let out = Tensor::empty(like.size(), (Kind::Float, Device::Cpu));
    // SAFETY: `out` is a fresh, contiguous CPU float tensor of n elements that nothing else references.
    let data = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, n) };
    // One thread: at a few tenths of a nanosecond per element the draw costs about 1% of a step, and
    // a second thread would only compete with libtorch's OpenMP workers spinning for their next task.
    fill_fast(data, k1, k2, threshold, keep);
    out.to_kind(like.kind())
}

/// `x` with dropout at rate `p` when `train` (unchanged otherwise); see the module's notes.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if x.device() != Device::Cpu || p >= 1.0 {
        return x.dropout(p, train);
    }
    x * mask(x, p)
}

/// `.drop_out(p, train)` on tensors: [`dropout`] in method-call position.
pub trait Dropout {
    /// See [`dropout`].
    fn drop_out(&self, p: f64, train: bool) -> Tensor;
}

impl Dropout for Tensor {
    fn drop_out(&self, p: f64, train: bool) -> Tensor {
        dropout(self, p, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_one_minus_p_scaled_and_repeat_under_the_same_seed() {
        let x = Tensor::ones([1000, 1000], (Kind::Float, Device::Cpu));
        manual_seed(7);
        let a = x.drop_out(0.1, true);
        let b = x.drop_out(0.1, true);
        manual_seed(7);
        let again = x.drop_out(0.1, true);
        let kept = a.ne(0.0).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
        // 10⁶ draws: the kept share is within 5 standard deviations (0.0015) of 0.9.
        assert!((kept - 0.9).abs() < 0.0015, "kept {kept}");
        let scaled = a.eq(1.0 / 0.9);
        assert!(a.eq(0.0).logical_or(&scaled).all().int64_value(&[]) == 1, "values are 0 or 1/(1 - p)");
        assert!(a.equal(&again), "the same seed gives the same mask");
        assert!(!a.equal(&b), "each call draws a fresh mask");
        // Neighbouring elements are not correlated (the index hash avalanches).
        let m = a.ne(0.0).to_kind(Kind::Double).flatten(0, -1);
        let (u, v) = (m.narrow(0, 0, 999_999), m.narrow(0, 1, 999_999));
        let cov = (&u * &v).mean(Kind::Double).double_value(&[]) - 0.9 * 0.9;
        assert!(cov.abs() < 0.001, "neighbour covariance {cov}");
        // Eval mode and p = 0 change nothing; the gradient is the mask.
        assert!(x.drop_out(0.1, false).equal(&x) && x.drop_out(0.0, true).equal(&x));
        let w = Tensor::ones([64], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = w.drop_out(0.5, true);
        y.sum(Kind::Float).backward();
        assert!(w.grad().equal(&y.detach()));
    }
}

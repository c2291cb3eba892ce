//! Mixed precision: an experiment's `training.precision`.
//!
//! - [`autocast`] runs a closure under libtorch's autocast for a device (CPU or CUDA) in bf16 or fp16:
//!   matmul-bound ops (linear, matmul, bmm, baddbmm, attention) run in the low precision, reductions and
//!   normalisations stay in fp32, and the parameters themselves stay fp32 (the master weights AdamW
//!   updates). tch's C API has only the deprecated CUDA-only switch, always fp16, so a small C++ shim
//!   (`csrc/amp.cpp`) sets the device type and dtype.
//! - [`GradScaler`] is fp16's loss scaling (as `torch.amp.GradScaler`): the loss is multiplied by a
//!   scale before backward so small gradients survive fp16; a step whose gradients overflow is skipped
//!   and the scale halved; after 2,000 good steps in a row it doubles. bf16 has fp32's range and needs no
//!   scaling.

use serde::{Deserialize, Serialize};
use tch::Device;

extern "C" {
    fn pelt_amp_enter(cuda: i32, dtype: i32) -> i32;
    fn pelt_amp_exit(cuda: i32, was: i32) -> i32;
    fn pelt_amp_deterministic(on: i32) -> i32;
    fn pelt_forget_grad(t: *mut torch_sys::C_tensor) -> i32;
}

/// Drops `t`'s gradient, as Python's `param.grad = None` does (tch can only zero it): a backward pass
/// that does not reach `t` then leaves its gradient undefined, which tells an optimiser the tensor took
/// no part in the step. Returns false when libtorch refused.
pub fn forget_grad(t: &mut tch::Tensor) -> bool {
    // SAFETY: the pointer is the live tensor `t` owns for the length of the call, and the shim catches
    // every C++ exception.
    unsafe { pelt_forget_grad(t.as_mut_ptr()) == 0 }
}

/// Asks libtorch for deterministic algorithms where it has them (ops without one warn once instead of
/// failing), deterministic cuDNN and no cuDNN autotuning: what a CUDA run needs to repeat itself. cuBLAS
/// also needs `CUBLAS_WORKSPACE_CONFIG=:4096:8` in the environment before CUDA starts, which `pelt
/// sweep --device cuda` sets. Returns false when libtorch refused.
pub fn deterministic(on: bool) -> bool {
    // SAFETY: the shim sets libtorch's global flags and catches every C++ exception.
    unsafe { pelt_amp_deterministic(i32::from(on)) == 0 }
}

/// The precision of a run's forward and backward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in fp32 (pelt's default; no autocast).
    #[default]
    Fp32,
    /// Autocast to bfloat16; no loss scaling.
    Bf16,
    /// Autocast to float16 with loss scaling.
    Fp16,
}

impl Precision {
    /// The name used in experiment files and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// Whether this is the default (left out of serialised settings so that fp32 runs keep their hashes).
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}

/// Runs `f` under autocast at `precision` on `device` (fp32: no autocast). The previous autocast state
/// is restored afterwards, also when `f` panics.
pub fn autocast<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    let dtype = match precision {
        Precision::Fp32 => return f(),
        Precision::Bf16 => 0,
        Precision::Fp16 => 1,
    };
    let cuda = i32::from(device.is_cuda());
    // SAFETY: the shim only flips libtorch's thread-local autocast state and catches every C++ exception.
    let was = unsafe { pelt_amp_enter(cuda, dtype) };
    assert!(was >= 0, "libtorch refused autocast on {device:?} in {}", precision.as_str());
    struct Exit(i32, i32);
    impl Drop for Exit {
        fn drop(&mut self) {
            // SAFETY: as above; undoes the matching enter.
            unsafe { pelt_amp_exit(self.0, self.1) };
        }
    }
    let _exit = Exit(cuda, was);
    f()
}

/// fp16's dynamic loss scale (torch.amp.GradScaler's defaults: 2¹⁶ to start, ×2 after 2,000 good steps,
/// ×½ on an overflow, whose step is skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct GradScaler {
    scale: f64,
    good: usize,
    skipped: usize,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler { scale: 65536.0, good: 0, skipped: 0 }
    }
}

impl GradScaler {
    /// Good steps in a row before the scale doubles.
    pub const GROWTH_INTERVAL: usize = 2000;

    /// The current scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Steps skipped for overflowing gradients so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Records a step whose unscaled gradient norm was `norm`; returns whether the step may be applied
    /// (false: an overflow, the step is skipped and the scale halved).
    pub fn update(&mut self, norm: f64) -> bool {
        if !norm.is_finite() {
            self.scale *= 0.5;
            self.good = 0;
            self.skipped += 1;
            return false;
        }
        self.good += 1;
        if self.good == Self::GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.good = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn autocast_runs_matmuls_in_the_low_precision_and_restores_fp32() {
        let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
        assert_eq!(autocast(Precision::Bf16, Device::Cpu, || a.linear::<Tensor>(&w, None)).kind(), Kind::BFloat16);
        assert_eq!(autocast(Precision::Fp32, Device::Cpu, || a.linear::<Tensor>(&w, None)).kind(), Kind::Float);
        // Reductions that autocast keeps in fp32 stay fp32 inside it.
        let sm = autocast(Precision::Bf16, Device::Cpu, || a.linear::<Tensor>(&w, None).log_softmax(-1, Kind::Float));
        assert_eq!(sm.kind(), Kind::Float);
        // Outside, everything is as before.
        assert_eq!(a.linear::<Tensor>(&w, None).kind(), Kind::Float);
        // Nested: the inner exit leaves the outer autocast on.
        let kind = autocast(Precision::Bf16, Device::Cpu, || {
            autocast(Precision::Bf16, Device::Cpu, || ());
            a.matmul(&w.tr()).kind()
        });
        assert_eq!(kind, Kind::BFloat16);
    }

    #[test]
    fn the_scaler_halves_on_overflow_and_doubles_after_a_run_of_good_steps() {
        let mut s = GradScaler::default();
        assert!(!s.update(f64::INFINITY));
        assert!(!s.update(f64::NAN));
        assert_eq!((s.scale(), s.skipped()), (16384.0, 2));
        for _ in 0..GradScaler::GROWTH_INTERVAL - 1 {
            assert!(s.update(1.0));
        }
        assert_eq!(s.scale(), 16384.0);
        assert!(s.update(1.0));
        assert_eq!(s.scale(), 32768.0);
        let names: Vec<&str> = [Precision::Fp32, Precision::Bf16, Precision::Fp16].iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["fp32", "bf16", "fp16"]);
    }
}

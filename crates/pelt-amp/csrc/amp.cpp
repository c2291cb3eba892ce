// libtorch's autocast switch per device type and dtype, which tch's C API does not expose (it has only
// the deprecated CUDA-only switch, whose dtype is always fp16).
#include <ATen/autocast_mode.h>

namespace {
c10::DeviceType device_of(int cuda) { return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
}

extern "C" {
// Turns autocast on for the device type in `dtype` (0: bf16, 1: fp16); returns whether it was on before,
// or -1 when libtorch refused.
int pelt_amp_enter(int cuda, int dtype) {
  try {
    auto device = device_of(cuda);
    bool was = at::autocast::is_autocast_enabled(device);
    at::autocast::set_autocast_dtype(device, dtype == 0 ? at::kBFloat16 : at::kHalf);
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::increment_nesting();
    return was ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Undoes `pelt_amp_enter`: restores the earlier state and, at the outermost exit, drops the cast cache.
int pelt_amp_exit(int cuda, int was) {
  try {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_of(cuda), was != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}
}

#include <ATen/Context.h>

extern "C" {
// Drops a tensor's gradient (Python's `param.grad = None`, which tch cannot say): the next backward
// pass that reaches the tensor allocates a fresh one, and one that does not leaves it undefined.
int pelt_forget_grad(at::Tensor* t) {
  try {
    t->mutable_grad().reset();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Deterministic algorithms where libtorch has them (warning, not failing, on ops that have none),
// deterministic cuDNN, no cuDNN autotuning. Returns -1 when libtorch refused.
int pelt_amp_deterministic(int on) {
  try {
    at::globalContext().setDeterministicAlgorithms(on != 0, /*warn_only=*/true);
    at::globalContext().setDeterministicCuDNN(on != 0);
    at::globalContext().setBenchmarkCuDNN(false);
    return 0;
  } catch (...) {
    return -1;
  }
}
}

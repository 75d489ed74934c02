// The one place where LibTorch 1.13 (Debian, CPU) and 2.x (GPU machines) differ.
#pragma once
#include <torch/version.h>
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

namespace dynarch::compat {

inline constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

// Fused/causal attention. q,k,v: [B, H, L, hd]. 1.13 only has the private
// tuple-returning variant; 2.x has the public one.
inline at::Tensor sdpa_causal(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
#else
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v, {}, 0.0, false, /*is_causal=*/true));
#endif
}

// CPU autocast switch (renamed in 2.4).
inline void set_cpu_autocast(bool enabled, at::ScalarType dtype = at::kBFloat16) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCPU, enabled);
  at::autocast::set_autocast_dtype(at::kCPU, dtype);
#else
  at::autocast::set_cpu_enabled(enabled);
  at::autocast::set_autocast_cpu_dtype(dtype);
#endif
  if (!enabled) at::autocast::clear_cache();
}

inline bool cpu_autocast_enabled() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU);
#else
  return at::autocast::is_cpu_enabled();
#endif
}

#ifdef DYNARCH_CUDA
// CUDA autocast switch (1.13: the unnamed "GPU" one, fp16 by default; 2.4+: by device type).
inline void set_cuda_autocast(bool enabled, at::ScalarType dtype = at::kBFloat16) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
  if (!enabled) at::autocast::clear_cache();
}
#endif

// bf16 autocast on, or off, on every device of this build: the CPU's switch
// and, in a CUDA build, CUDA's, always together (so cpu_autocast_enabled()
// tells the state of both).
inline void set_autocast(bool enabled) {
  set_cpu_autocast(enabled);
#ifdef DYNARCH_CUDA
  set_cuda_autocast(enabled);
#endif
}

// RAII scope for bf16 autocast (on or off: fp32 islands).
struct AutocastScope {
  bool prev;
  explicit AutocastScope(bool on) : prev(cpu_autocast_enabled()) { if (on != prev) set_autocast(on); }
  ~AutocastScope() { if (cpu_autocast_enabled() != prev) set_autocast(prev); }
};

}  // namespace dynarch::compat

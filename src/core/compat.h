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

// RAII scope for bf16 autocast on CPU.
struct AutocastScope {
  bool prev;
  explicit AutocastScope(bool on) : prev(cpu_autocast_enabled()) { if (on != prev) set_cpu_autocast(on); }
  ~AutocastScope() { if (cpu_autocast_enabled() != prev) set_cpu_autocast(prev); }
};

}  // namespace dynarch::compat

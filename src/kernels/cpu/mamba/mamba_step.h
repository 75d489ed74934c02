// Decode step of a Mamba-2 layer (one token per row, no autograd), on the
// caches in place. Reference: Mamba2::step_reference (op by op); tests in
// tests/test_fused_decode.cpp.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// Epsilon of Mamba-2's gated RMS norm in the decode kernels (as the forward's).
constexpr double kGatedNormEps = 1e-5;

// One Mamba-2 step after in_proj, in place on the caches: causal conv + SiLU,
// SSM update, y = S C + D x, gated norm. zx (B, 2 Di + 2N + H); conv (B, Cd, K);
// ssm (B, H, P, N); all in the compute type (fp32/fp64) of ssm. Returns g (B, Di).
at::Tensor mamba_step_core(const at::Tensor& zx, at::Tensor& conv, at::Tensor& ssm, const at::Tensor& conv_w,
                           const at::Tensor& conv_b, const at::Tensor& dt_bias, const at::Tensor& A_log,
                           const at::Tensor& D, const at::Tensor& norm_w, int64_t d_inner, int64_t d_state,
                           double eps = kGatedNormEps);

// Where mamba_step_core has a kernel: CPU tensors, and CUDA tensors in a build
// with CUDA (its hook runs kernels/cuda/mamba/mamba_step.cu). Mamba2::step in
// fast mode runs in_proj, mamba_step_core, out_proj there, else its op-by-op
// step_reference. `cuda_built` defaults to this build (tests pass either).
inline bool mamba_step_core_applies(const c10::Device& d, bool cuda_built) {
  return d.is_cpu() || (cuda_built && d.is_cuda());
}
inline bool mamba_step_core_applies(const c10::Device& d) {
#if DYNARCH_CUDA
  return mamba_step_core_applies(d, true);
#else
  return mamba_step_core_applies(d, false);
#endif
}

// A Mamba-2 block's weights for mamba_block_step (Mamba2 parameter names).
struct MambaBlockWeights {
  const at::Tensor& norm_w;  // the block's pre-norm
  double norm_eps;
  const at::Tensor &in_w, &out_w, &conv_w, &conv_b, &dt_bias, &A_log, &D, &gnorm_w;
  int64_t d_inner, d_state;
};
// r + out_proj(mamba_step_core(in_proj(rmsnorm(r)))) for a pre-norm block with
// a plain residual, in one call: fp32 rows (at most two), fp32 weights and
// caches, no autograd, no autocast, no bf16 weight copies, no block_gemv or
// unfused_step variant (core/forward_context.h). It runs the norm, both GEMVs and the core on raw buffers
// instead of ~12 LibTorch ops (each a dispatcher round trip and an allocation;
// LibTorch op overhead was ~1/4 of the decode wall time). Returns an undefined
// tensor where it does not apply (the caller runs the ops); conv / ssm are
// updated in place.
at::Tensor mamba_block_step(const at::Tensor& r, const MambaBlockWeights& w, at::Tensor& conv, at::Tensor& ssm);

}  // namespace dynarch

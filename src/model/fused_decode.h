// Decode-step kernels (one token per row, no autograd). At batch 1 the step
// is bound by op overhead and weight traffic, not arithmetic: LibTorch's
// at::linear on one row runs a GEMM that first packs (copies) the weight
// matrix, and every small op costs a dispatcher round trip. References: the
// op-by-op forms they replace (at::linear, Mamba2::step_reference, the
// matmul/softmax attention step); tests in tests/test_fused_decode.cpp.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace dynarch {

// x (..., in) @ W (out, in)^T + bias. fp32/fp64 rows without autograd or
// autocast and at most kGemvMaxRows rows take a GEMV that reads each weight
// once; anything else is at::linear.
constexpr int64_t kGemvMaxRows = 16;
at::Tensor linear_rows(const at::Tensor& x, const at::Tensor& W, const at::Tensor& bias = {});

// Decode-kernel options, each set for this thread while its scope is alive
// (the previous value comes back at the scope's end).
enum DecodeOption { kStreamWeights, kBf16Weights, kBlockGemv, kUnfusedStep, kNumDecodeOptions };
template <DecodeOption Option>
struct DecodeOptionScope {
  DecodeOptionScope();
  ~DecodeOptionScope();
  DecodeOptionScope(const DecodeOptionScope&) = delete;
  DecodeOptionScope& operator=(const DecodeOptionScope&) = delete;

 private:
  bool prev;
};

// linear_rows reads weights with non-temporal prefetches. H-Net decode sets it
// around the inner network, whose weights are read on boundary bytes only, so
// that they do not push the outer stages' weights (read every byte) out of the
// last-level cache. Numerics unchanged.
using StreamWeightsScope = DecodeOptionScope<kStreamWeights>;

// fp32 linear_rows multiply by a bf16 copy of the weight (made once per weight
// and kept until the weight changes) with fp32 accumulation: half the weight
// traffic of decode. Changes numerics (weights rounded to bf16): an opt-in,
// reported apart from fp32 decode.
using Bf16WeightsScope = DecodeOptionScope<kBf16Weights>;

// fp32 linear_rows of one or two rows use the 4-row block kernel (the general
// one) instead of the one-row streaming kernel: for A/B benchmarks and tests.
using BlockGemvScope = DecodeOptionScope<kBlockGemv>;

// Decode steps run op by op (mamba_block_step declines): for A/B benchmarks and tests.
using UnfusedStepScope = DecodeOptionScope<kUnfusedStep>;

// Epsilon of Mamba-2's gated RMS norm in the decode kernels (as the forward's).
constexpr double kGatedNormEps = 1e-5;

// One Mamba-2 step after in_proj, in place on the caches: causal conv + SiLU,
// SSM update, y = S C + D x, gated norm. zx (B, 2 Di + 2N + H); conv (B, Cd, K);
// ssm (B, H, P, N); all in the compute type (fp32/fp64) of ssm. Returns g (B, Di).
at::Tensor mamba_step_core(const at::Tensor& zx, at::Tensor& conv, at::Tensor& ssm, const at::Tensor& conv_w,
                           const at::Tensor& conv_b, const at::Tensor& dt_bias, const at::Tensor& A_log,
                           const at::Tensor& D, const at::Tensor& norm_w, int64_t d_inner, int64_t d_state,
                           double eps = kGatedNormEps);

// A Mamba-2 block's weights for mamba_block_step (Mamba2 parameter names).
struct MambaBlockWeights {
  const at::Tensor& norm_w;  // the block's pre-norm
  double norm_eps;
  const at::Tensor &in_w, &out_w, &conv_w, &conv_b, &dt_bias, &A_log, &D, &gnorm_w;
  int64_t d_inner, d_state;
};
// r + out_proj(mamba_step_core(in_proj(rmsnorm(r)))) for a pre-norm block with
// a plain residual, in one call: fp32 rows (at most two), fp32 weights and
// caches, no autograd, no autocast, no bf16 weight copies, no BlockGemvScope or
// UnfusedStepScope. It runs the norm, both GEMVs and the core on raw buffers
// instead of ~12 LibTorch ops (each a dispatcher round trip and an allocation;
// LibTorch op overhead was ~1/4 of the decode wall time). Returns an undefined
// tensor where it does not apply (the caller runs the ops); conv / ssm are
// updated in place.
at::Tensor mamba_block_step(const at::Tensor& r, const MambaBlockWeights& w, at::Tensor& conv, at::Tensor& ssm);

// Attention of one query per row over its cached keys: qkv (B, 3, H, hd)
// (q and k already rotated), K/V caches (B, H, capacity, hd) holding this
// step's key; row b sees keys j <= pos[b] (and j >= pos[b] - window if
// window >= 0). Scores and softmax in fp32 or better. Returns (B, H * hd).
at::Tensor attention_step_core(const at::Tensor& qkv, const at::Tensor& K, const at::Tensor& V,
                               const std::vector<int64_t>& pos, int64_t window);

}  // namespace dynarch

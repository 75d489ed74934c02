// Decode GEMV (one token per row, no autograd). At batch 1 the step is bound
// by op overhead and weight traffic, not arithmetic: LibTorch's at::linear on
// one row runs a GEMM that first packs (copies) the weight matrix. Reference:
// at::linear; tests in tests/test_fused_decode.cpp.
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

// Whether an option's scope is alive in this thread (for the other decode kernels).
bool decode_option_active(DecodeOption o);

}  // namespace dynarch

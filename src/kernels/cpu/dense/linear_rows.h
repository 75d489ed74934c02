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

// Variants (core/forward_context.h): stream_weights reads the weights with
// non-temporal prefetches (H-Net decode sets it around the inner network, whose
// weights are read on boundary bytes only, so that they do not push the outer
// stages' weights out of the last-level cache; numerics unchanged);
// bf16_weights multiplies fp32 rows by a bf16 copy of the weight (made once and
// kept until the weight changes) with fp32 accumulation, half the weight
// traffic, an opt-in that changes numerics; block_gemv uses the 4-row block
// kernel also for one or two rows (A/B benchmarks and tests).

}  // namespace dynarch

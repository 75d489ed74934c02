// Fused CPU kernels (custom autograd functions) for the elementwise hot spots
// of training; LibTorch 1.13 runs bf16 elementwise ops unvectorised, and the
// unfused forms make several passes over memory. Each has a plain tensor-op
// reference (rms_norm in norm.h; swiglu_reference here) and an fp64 gradcheck.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// h = [v | g] along the last dim (value first, gate second) -> v * silu(g).
// Any of fp32/bf16/fp64; computes in fp32 (fp64 for fp64), returns h's dtype.
at::Tensor swiglu_fused(const at::Tensor& h);
at::Tensor swiglu_reference(const at::Tensor& h);

// RMSNorm over the last dim with fp32 statistics; returns fp32 (fp64 for fp64).
at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& w, double eps = 1e-5);

// Mamba-2 gated norm rms_norm(y * silu(z)) * w in one pass (fp32 out; fp64 for fp64).
// Reference: gated_rms_norm in norm.h.
at::Tensor gated_rms_norm_fused(const at::Tensor& y, const at::Tensor& z, const at::Tensor& w, double eps = 1e-5);

}  // namespace dynarch

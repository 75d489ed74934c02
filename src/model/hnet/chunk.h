// H-Net's chunk and dechunk layers (hnet.md §3–§5): downsample to the boundary
// rows, and back by the EMA smoother (kernels/cpu/chunk/ema_scan.h), the
// upsampling gather and the straight-through estimator.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// Boundary rows of x moved to the front of each row in order: (B, M, D) with
// M = max boundaries per row, plus next_mask (B, M) and the gathered index (B, M).
struct Chunked {
  at::Tensor x, mask, index;
};
Chunked downsample(const at::Tensor& x, const at::Tensor& b);

// Dechunk: EMA with P = clamp(p at chunk rows, 1e-4, 1-1e-4), then position t
// takes chunk k(t) = cumsum(b)_t - 1 (k = -1 takes h0, for continued sequences).
at::Tensor dechunk(const at::Tensor& zhat, const at::Tensor& p_chunks, const at::Tensor& b,
                   const at::Tensor& h0 = {});

// Straight-through estimator: forward exactly 1, gradient passed unchanged.
at::Tensor ste_ones(const at::Tensor& c);

}  // namespace dynarch

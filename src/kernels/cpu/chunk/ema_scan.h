// The EMA smoother of H-Net's dechunk (hnet.md §4) as a kernel: one
// sequential scan per row over the chunks, with a hand-written reverse scan.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// EMA over chunks: zbar_j = P_j z_j + (1 - P_j) zbar_{j-1}, zbar_{-1} = h0
// (zeros if undefined). z (B, M, D), P (B, M). Custom autograd op with
// hand-written forward and reverse scans (fp32 / fp64).
at::Tensor ema_scan(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0 = {});
// Plain tensor-op reference (a loop of tensor ops) for tests.
at::Tensor ema_scan_reference(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0 = {});

}  // namespace dynarch

// Raw CUDA launchers of H-Net's dechunk EMA (hnet.md §4); no torch here.
// All arrays contiguous: z, out, g, gz, gPd (B, M, D); P (B, M); h0, gh0 (B, D).
// One thread per (row, channel) walks the M chunks. C = float or double.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dynarch::cuda {

// out_j = P_j z_j + (1 - P_j) out_{j-1}, out_{-1} = h0.
template <class C>
cudaError_t ema_scan_forward(const C* z, const C* P, const C* h0, C* out, int64_t B, int64_t M, int64_t D,
                             cudaStream_t stream);

// Reverse scan: delta_j = g_j + (1 - P_{j+1}) delta_{j+1}; gz_j = P_j delta_j;
// gPd_j[d] = delta_j[d] (z_j[d] - out_{j-1}[d]) (the caller sums over d for gP);
// gh0 = (1 - P_0) delta_0.
template <class C>
cudaError_t ema_scan_backward(const C* z, const C* P, const C* h0, const C* out, const C* g, C* gz, C* gPd, C* gh0,
                              int64_t B, int64_t M, int64_t D, cudaStream_t stream);

}  // namespace dynarch::cuda

// Raw CUDA launchers of Mamba-2's causal depthwise conv + SiLU (hnet.md §11.2);
// no torch here. x (B, L, C) with element (b, t, c) at x[b*sb + t*sl + c] (so
// the xBC columns of zxbcdt are read in place); w (C, K) row-major; bias (C);
// init (B, K-1, C) the pre-conv rows before t = 0, or null for zeros.
// seq_start (B, L) int64 contiguous, or null: packed rows (kernels/cpu/mamba/
// seq_starts.h); a tap before its output's sequence start reads zero and
// gets no gradient (init's rows belong to the first sequence).
// Compute type C = float (for float and bf16 x) or double; K <= kMaxConvWidth.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dynarch::cuda {

constexpr int kMaxConvWidth = 8;

struct ConvShape {
  int64_t B, L, C, K;
  int64_t sb, sl;  // strides of x in elements (the channel stride is 1)
};

// y[b, t, c] = silu(bias[c] + sum_k w[c, k] x(b, t - K + 1 + k, c)), y (B, L, C) contiguous in C.
template <class T, class C>
cudaError_t causal_conv_silu_forward(const T* x, const C* w, const C* bias, const C* init, const int64_t* seq_start,
                                     C* y, ConvShape s, cudaStream_t stream);

// From gy (B, L, C): gx (B, L, C) contiguous in T (through w, recomputing the
// pre-activation), and the partial weight gradients gw_part (nseg, K + 1, C):
// rows 0..K-1 for w[:, k], row K for the bias; the caller sums over nseg.
// dpre (B, L, C) is scratch. conv_weight_segments(s) gives nseg.
template <class T, class C>
cudaError_t causal_conv_silu_backward(const T* x, const C* w, const C* bias, const C* init, const int64_t* seq_start,
                                      const C* gy, C* dpre, T* gx, C* gw_part, ConvShape s, cudaStream_t stream);

// Row segments of the weight-gradient reduction: each sums B*L/nseg positions.
inline int64_t conv_weight_segments(const ConvShape& s) {
  const int64_t rows = s.B * s.L, n = (rows + 255) / 256;
  return n < 1 ? 1 : (n > 512 ? 512 : n);
}

}  // namespace dynarch::cuda

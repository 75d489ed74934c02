// Causal depthwise conv + SiLU on CUDA. One thread per output element
// (b, t, c): channels are innermost, so a warp reads 32 neighbouring
// channels of one position (coalesced). The weight gradient is a reduction
// over all B*L positions: each thread sums one channel over one segment of
// positions, the caller adds the segments (deterministic, no atomics).
#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/mamba/causal_conv_launch.h"

namespace dynarch::cuda {
namespace {

template <class T>
__device__ __forceinline__ T from_c(float v);
template <>
__device__ __forceinline__ float from_c<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_c<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}
template <class T>
__device__ __forceinline__ T from_c(double v) {
  return T(v);
}

// Input of position src (< 0: the initial rows, or 0 without them) at channel c.
template <class T, class C>
__device__ __forceinline__ C conv_in(const T* x, const C* init, const ConvShape& s, int64_t b, int64_t src, int64_t c) {
  if (src >= 0) return load_as<C>(x[b * s.sb + src * s.sl + c]);
  if (!init) return C(0);
  return init[(b * (s.K - 1) + (s.K - 1 + src)) * s.C + c];
}

// First tap of output (b, t) inside its sequence (packed rows): the taps
// before it read zero. 0 without starts and for the first sequence (whose
// rows before position 0 are init's).
__device__ __forceinline__ int64_t conv_first_tap(const int64_t* st, const ConvShape& s, int64_t b, int64_t t) {
  if (!st) return 0;
  const int64_t start = st[b * s.L + t], k0 = start - (t - s.K + 1);
  return start > 0 && k0 > 0 ? k0 : 0;
}

template <class T, class C>
__device__ __forceinline__ C conv_pre(const T* x, const C* w, const C* bias, const C* init, const int64_t* st,
                                      const ConvShape& s, int64_t b, int64_t t, int64_t c) {
  C acc = bias[c];
  for (int64_t k = conv_first_tap(st, s, b, t); k < s.K; ++k)
    acc += w[c * s.K + k] * conv_in(x, init, s, b, t - s.K + 1 + k, c);
  return acc;
}

template <class T, class C>
__global__ void conv_forward_kernel(const T* __restrict__ x, const C* __restrict__ w, const C* __restrict__ bias,
                                    const C* __restrict__ init, const int64_t* __restrict__ st, C* __restrict__ y,
                                    ConvShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.L * s.C) {
    const int64_t c = i % s.C, t = (i / s.C) % s.L, b = i / (s.C * s.L);
    const C v = conv_pre(x, w, bias, init, st, s, b, t, c);
    y[i] = v * sigmoid(v);
  }
}

// dpre = gy * silu'(pre), silu'(v) = sig(v) (1 + v (1 - sig(v))).
template <class T, class C>
__global__ void conv_dpre_kernel(const T* __restrict__ x, const C* __restrict__ w, const C* __restrict__ bias,
                                 const C* __restrict__ init, const int64_t* __restrict__ st, const C* __restrict__ gy,
                                 C* __restrict__ dpre, ConvShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.L * s.C) {
    const int64_t c = i % s.C, t = (i / s.C) % s.L, b = i / (s.C * s.L);
    const C v = conv_pre(x, w, bias, init, st, s, b, t, c), sg = sigmoid(v);
    dpre[i] = gy[i] * sg * (C(1) + v * (C(1) - sg));
  }
}

// gx[b, t, c] = sum_k w[c, k] dpre[b, t + K - 1 - k, c] over outputs inside the
// row (and inside t's sequence: an output o reads t iff t >= o's start).
template <class T, class C>
__global__ void conv_dx_kernel(const C* __restrict__ w, const C* __restrict__ dpre, const int64_t* __restrict__ st,
                               T* __restrict__ gx, ConvShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.L * s.C) {
    const int64_t c = i % s.C, t = (i / s.C) % s.L, b = i / (s.C * s.L);
    C acc = 0;
    for (int64_t k = 0; k < s.K; ++k) {
      const int64_t o = t + s.K - 1 - k;
      if (o < s.L && (!st || st[b * s.L + o] <= t)) acc += w[c * s.K + k] * dpre[(b * s.L + o) * s.C + c];
    }
    gx[i] = from_c<T>(acc);
  }
}

// gw_part[seg, k, c] = sum over the segment's positions r of dpre[r, c] x(r - K + 1 + k, c);
// gw_part[seg, K, c] = sum dpre[r, c]. Threads: (segment, channel).
template <class T, class C>
__global__ void conv_dw_kernel(const T* __restrict__ x, const C* __restrict__ init, const int64_t* __restrict__ st,
                               const C* __restrict__ dpre, C* __restrict__ gw_part, ConvShape s, int64_t nseg) {
  const int64_t rows = s.B * s.L, per = (rows + nseg - 1) / nseg;
  DYNARCH_GRID_LOOP(i, nseg * s.C) {
    const int64_t c = i % s.C, seg = i / s.C;
    C acc[kMaxConvWidth + 1];
#pragma unroll
    for (int k = 0; k <= kMaxConvWidth; ++k) acc[k] = 0;
    const int64_t r1 = (seg + 1) * per < rows ? (seg + 1) * per : rows;
    for (int64_t r = seg * per; r < r1; ++r) {
      const int64_t b = r / s.L, t = r % s.L;
      const C d = dpre[r * s.C + c];
      const int64_t k0 = conv_first_tap(st, s, b, t);
#pragma unroll
      for (int k = 0; k < kMaxConvWidth; ++k)
        if (k < s.K && k >= k0) acc[k] += d * conv_in(x, init, s, b, t - s.K + 1 + k, c);
      acc[kMaxConvWidth] += d;
    }
    for (int64_t k = 0; k < s.K; ++k) {
      C v = 0;
#pragma unroll
      for (int kk = 0; kk < kMaxConvWidth; ++kk)  // constant indices keep acc in registers
        if (kk == k) v = acc[kk];
      gw_part[(seg * (s.K + 1) + k) * s.C + c] = v;
    }
    gw_part[(seg * (s.K + 1) + s.K) * s.C + c] = acc[kMaxConvWidth];
  }
}

}  // namespace

template <class T, class C>
cudaError_t causal_conv_silu_forward(const T* x, const C* w, const C* bias, const C* init, const int64_t* seq_start,
                                     C* y, ConvShape s, cudaStream_t stream) {
  if (s.K < 1 || s.K > kMaxConvWidth) return cudaErrorInvalidValue;
  const int64_t n = s.B * s.L * s.C;
  if (n == 0) return cudaSuccess;
  return launch(conv_forward_kernel<T, C>, n, stream, x, w, bias, init, seq_start, y, s);
}

template <class T, class C>
cudaError_t causal_conv_silu_backward(const T* x, const C* w, const C* bias, const C* init, const int64_t* seq_start,
                                      const C* gy, C* dpre, T* gx, C* gw_part, ConvShape s, cudaStream_t stream) {
  if (s.K < 1 || s.K > kMaxConvWidth) return cudaErrorInvalidValue;
  const int64_t n = s.B * s.L * s.C, nseg = conv_weight_segments(s);
  if (n == 0) return cudaSuccess;  // the caller zero-fills gw_part
  DYNARCH_CUDA_TRY(launch(conv_dpre_kernel<T, C>, n, stream, x, w, bias, init, seq_start, gy, dpre, s));
  DYNARCH_CUDA_TRY(launch(conv_dx_kernel<T, C>, n, stream, w, dpre, seq_start, gx, s));
  return launch(conv_dw_kernel<T, C>, nseg * s.C, stream, x, init, seq_start, dpre, gw_part, s, nseg);
}

#define DYNARCH_CONV_INSTANTIATE(T, C)                                                                                \
  template cudaError_t causal_conv_silu_forward<T, C>(const T*, const C*, const C*, const C*, const int64_t*, C*,     \
                                                      ConvShape, cudaStream_t);                                       \
  template cudaError_t causal_conv_silu_backward<T, C>(const T*, const C*, const C*, const C*, const int64_t*,        \
                                                       const C*, C*, T*, C*, ConvShape, cudaStream_t);
DYNARCH_CONV_INSTANTIATE(float, float)
DYNARCH_CONV_INSTANTIATE(__nv_bfloat16, float)
DYNARCH_CONV_INSTANTIATE(double, double)

}  // namespace dynarch::cuda

// H-Net dechunk EMA on CUDA: one thread per (row b, channel d) runs the
// sequential recurrence over the chunks; neighbouring threads read
// neighbouring channels, so every step is one coalesced row access.
#include "kernels/cuda/chunk/ema_scan_launch.h"
#include "kernels/cuda/grid.cuh"

namespace dynarch::cuda {
namespace {

template <class C>
__global__ void ema_forward_kernel(const C* __restrict__ z, const C* __restrict__ P, const C* __restrict__ h0,
                                   C* __restrict__ out, int64_t B, int64_t M, int64_t D) {
  DYNARCH_GRID_LOOP(i, B * D) {
    const int64_t b = i / D, d = i % D;
    C prev = h0[b * D + d];
    for (int64_t j = 0; j < M; ++j) {
      const C p = P[b * M + j];
      const int64_t e = (b * M + j) * D + d;
      prev = p * z[e] + (C(1) - p) * prev;
      out[e] = prev;
    }
  }
}

template <class C>
__global__ void ema_backward_kernel(const C* __restrict__ z, const C* __restrict__ P, const C* __restrict__ h0,
                                    const C* __restrict__ out, const C* __restrict__ g, C* __restrict__ gz,
                                    C* __restrict__ gPd, C* __restrict__ gh0, int64_t B, int64_t M, int64_t D) {
  DYNARCH_GRID_LOOP(i, B * D) {
    const int64_t b = i / D, d = i % D;
    C delta = 0;
    for (int64_t j = M - 1; j >= 0; --j) {
      const int64_t e = (b * M + j) * D + d;
      const C carry = j + 1 < M ? C(1) - P[b * M + j + 1] : C(0);
      delta = g[e] + carry * delta;
      const C p = P[b * M + j];
      const C prev = j > 0 ? out[e - D] : h0[b * D + d];
      gz[e] = p * delta;
      gPd[e] = delta * (z[e] - prev);
    }
    const C p0 = M > 0 ? P[b * M] : C(1);
    gh0[b * D + d] = (C(1) - p0) * delta;
  }
}

}  // namespace

template <class C>
cudaError_t ema_scan_forward(const C* z, const C* P, const C* h0, C* out, int64_t B, int64_t M, int64_t D,
                             cudaStream_t stream) {
  if (B * D == 0) return cudaSuccess;
  return launch(ema_forward_kernel<C>, B * D, stream, z, P, h0, out, B, M, D);
}

template <class C>
cudaError_t ema_scan_backward(const C* z, const C* P, const C* h0, const C* out, const C* g, C* gz, C* gPd, C* gh0,
                              int64_t B, int64_t M, int64_t D, cudaStream_t stream) {
  if (B * D == 0) return cudaSuccess;
  return launch(ema_backward_kernel<C>, B * D, stream, z, P, h0, out, g, gz, gPd, gh0, B, M, D);
}

template cudaError_t ema_scan_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t,
                                             int64_t, cudaStream_t);
template cudaError_t ema_scan_forward<double>(const double*, const double*, const double*, double*, int64_t, int64_t,
                                              int64_t, cudaStream_t);
template cudaError_t ema_scan_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                              float*, float*, float*, int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t ema_scan_backward<double>(const double*, const double*, const double*, const double*,
                                               const double*, double*, double*, double*, int64_t, int64_t, int64_t,
                                               cudaStream_t);

}  // namespace dynarch::cuda

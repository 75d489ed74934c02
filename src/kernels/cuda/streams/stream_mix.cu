// HC / mHC stream mixing on CUDA. Element-wise outputs: one thread per output
// element, D innermost (coalesced). Dot products over D (the map gradients):
// one warp per output, lanes stride over D, then a shuffle reduction.
#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/streams/stream_mix_launch.h"

namespace dynarch::cuda {
namespace {

// <a[0..D), b[0..D)> summed by the calling warp; every lane returns the sum.
template <class C>
__device__ __forceinline__ C warp_dot(const C* a, const C* b, int64_t D) {
  C s = 0;
#ifdef DYNARCH_CUDA_EMULATE  // host emulation runs lanes one at a time: each sums all of D
  for (int64_t d = 0; d < D; ++d) s += a[d] * b[d];
#else
  for (int64_t d = threadIdx.x % 32; d < D; d += 32) s += a[d] * b[d];
  for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
#endif
  return s;
}

template <class C>
__global__ void pre_mix_kernel(const C* __restrict__ X, const C* __restrict__ pre, C* __restrict__ u, MixShape s) {
  DYNARCH_GRID_LOOP(i, s.T * s.D) {
    const int64_t t = i / s.D, d = i % s.D;
    C acc = 0;
    for (int64_t j = 0; j < s.n; ++j) acc += pre[t * s.n + j] * X[(t * s.n + j) * s.D + d];
    u[i] = acc;
  }
}

template <class C>
__global__ void pre_mix_gx_kernel(const C* __restrict__ pre, const C* __restrict__ G, C* __restrict__ gX, MixShape s) {
  DYNARCH_GRID_LOOP(i, s.T * s.n * s.D) {
    const int64_t d = i % s.D, tj = i / s.D, t = tj / s.n;
    gX[i] = pre[tj] * G[t * s.D + d];
  }
}

template <class C>
__global__ void pre_mix_gpre_kernel(const C* __restrict__ X, const C* __restrict__ G, C* __restrict__ gpre,
                                    MixShape s) {
  DYNARCH_WARP_LOOP(w, s.T * s.n) {
    const C v = warp_dot(X + w * s.D, G + (w / s.n) * s.D, s.D);
    if (threadIdx.x % 32 == 0) gpre[w] = v;
  }
}

template <class C>
__global__ void post_res_kernel(const C* __restrict__ X, const C* __restrict__ R, const C* __restrict__ post,
                                const C* __restrict__ y, C* __restrict__ out, MixShape s) {
  DYNARCH_GRID_LOOP(i, s.T * s.n * s.D) {
    const int64_t d = i % s.D, tk = i / s.D, t = tk / s.n;
    C acc = post[tk] * y[t * s.D + d];
    for (int64_t j = 0; j < s.n; ++j) acc += R[tk * s.n + j] * X[(t * s.n + j) * s.D + d];
    out[i] = acc;
  }
}

// gX[t, j, d] = sum_k R[t, k, j] G[t, k, d].
template <class C>
__global__ void post_res_gx_kernel(const C* __restrict__ R, const C* __restrict__ G, C* __restrict__ gX, MixShape s) {
  DYNARCH_GRID_LOOP(i, s.T * s.n * s.D) {
    const int64_t d = i % s.D, tj = i / s.D, t = tj / s.n, j = tj % s.n;
    C acc = 0;
    for (int64_t k = 0; k < s.n; ++k) acc += R[(t * s.n + k) * s.n + j] * G[(t * s.n + k) * s.D + d];
    gX[i] = acc;
  }
}

// gy[t, d] = sum_k post[t, k] G[t, k, d].
template <class C>
__global__ void post_res_gy_kernel(const C* __restrict__ post, const C* __restrict__ G, C* __restrict__ gy,
                                   MixShape s) {
  DYNARCH_GRID_LOOP(i, s.T * s.D) {
    const int64_t t = i / s.D, d = i % s.D;
    C acc = 0;
    for (int64_t k = 0; k < s.n; ++k) acc += post[t * s.n + k] * G[(t * s.n + k) * s.D + d];
    gy[i] = acc;
  }
}

// gR[t, k, j] = <G[t, k], X[t, j]>: one warp per (t, k, j).
template <class C>
__global__ void post_res_gr_kernel(const C* __restrict__ X, const C* __restrict__ G, C* __restrict__ gR, MixShape s) {
  DYNARCH_WARP_LOOP(w, s.T * s.n * s.n) {
    const int64_t j = w % s.n, tk = w / s.n, t = tk / s.n;
    const C v = warp_dot(G + tk * s.D, X + (t * s.n + j) * s.D, s.D);
    if (threadIdx.x % 32 == 0) gR[w] = v;
  }
}

// gpost[t, k] = <G[t, k], y[t]>: one warp per (t, k).
template <class C>
__global__ void post_res_gpost_kernel(const C* __restrict__ y, const C* __restrict__ G, C* __restrict__ gpost,
                                      MixShape s) {
  DYNARCH_WARP_LOOP(w, s.T * s.n) {
    const C v = warp_dot(G + w * s.D, y + (w / s.n) * s.D, s.D);
    if (threadIdx.x % 32 == 0) gpost[w] = v;
  }
}

}  // namespace

template <class C>
cudaError_t pre_mix_forward(const C* X, const C* pre, C* u, MixShape s, cudaStream_t stream) {
  if (s.T * s.D == 0) return cudaSuccess;
  return launch(pre_mix_kernel<C>, s.T * s.D, stream, X, pre, u, s);
}

template <class C>
cudaError_t pre_mix_backward(const C* X, const C* pre, const C* G, C* gX, C* gpre, MixShape s, cudaStream_t stream) {
  if (s.T * s.n == 0) return cudaSuccess;
  if (gX && s.D > 0) DYNARCH_CUDA_TRY(launch(pre_mix_gx_kernel<C>, s.T * s.n * s.D, stream, pre, G, gX, s));
  if (gpre) DYNARCH_CUDA_TRY(launch_warps(pre_mix_gpre_kernel<C>, s.T * s.n, stream, X, G, gpre, s));
  return cudaSuccess;
}

template <class C>
cudaError_t post_res_forward(const C* X, const C* R, const C* post, const C* y, C* out, MixShape s,
                             cudaStream_t stream) {
  if (s.T * s.n * s.D == 0) return cudaSuccess;
  return launch(post_res_kernel<C>, s.T * s.n * s.D, stream, X, R, post, y, out, s);
}

template <class C>
cudaError_t post_res_backward(const C* X, const C* R, const C* post, const C* y, const C* G, C* gX, C* gR, C* gpost,
                              C* gy, MixShape s, cudaStream_t stream) {
  if (s.T * s.n == 0) return cudaSuccess;
  const int64_t e = s.T * s.n * s.D;
  if (gX && e) DYNARCH_CUDA_TRY(launch(post_res_gx_kernel<C>, e, stream, R, G, gX, s));
  if (gy && s.D) DYNARCH_CUDA_TRY(launch(post_res_gy_kernel<C>, s.T * s.D, stream, post, G, gy, s));
  if (gR) DYNARCH_CUDA_TRY(launch_warps(post_res_gr_kernel<C>, s.T * s.n * s.n, stream, X, G, gR, s));
  if (gpost) DYNARCH_CUDA_TRY(launch_warps(post_res_gpost_kernel<C>, s.T * s.n, stream, y, G, gpost, s));
  return cudaSuccess;
}

#define DYNARCH_MIX_INSTANTIATE(C)                                                                              \
  template cudaError_t pre_mix_forward<C>(const C*, const C*, C*, MixShape, cudaStream_t);                      \
  template cudaError_t pre_mix_backward<C>(const C*, const C*, const C*, C*, C*, MixShape, cudaStream_t);       \
  template cudaError_t post_res_forward<C>(const C*, const C*, const C*, const C*, C*, MixShape, cudaStream_t); \
  template cudaError_t post_res_backward<C>(const C*, const C*, const C*, const C*, const C*, C*, C*, C*, C*,   \
                                            MixShape, cudaStream_t);
DYNARCH_MIX_INSTANTIATE(float)
DYNARCH_MIX_INSTANTIATE(double)

}  // namespace dynarch::cuda

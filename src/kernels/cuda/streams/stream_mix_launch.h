// Raw CUDA launchers of HC / mHC stream mixing (mhc.md §1); no torch here.
// Contiguous arrays: X (T, n, D); pre, post (T, n); R (T, n, n) [dest, src];
// y, u (T, D); out and G of hc_post_res (T, n, D). C = float or double.
// A null gradient pointer skips that gradient.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dynarch::cuda {

struct MixShape {
  int64_t T, n, D;
};

// u[t] = sum_j pre[t, j] X[t, j, :].
template <class C>
cudaError_t pre_mix_forward(const C* X, const C* pre, C* u, MixShape s, cudaStream_t stream);
// gX[t, j, :] = pre[t, j] G[t, :];  gpre[t, j] = <X[t, j, :], G[t, :]>.  G (T, D).
template <class C>
cudaError_t pre_mix_backward(const C* X, const C* pre, const C* G, C* gX, C* gpre, MixShape s, cudaStream_t stream);

// out[t, k, :] = sum_j R[t, k, j] X[t, j, :] + post[t, k] y[t, :].
template <class C>
cudaError_t post_res_forward(const C* X, const C* R, const C* post, const C* y, C* out, MixShape s,
                             cudaStream_t stream);
// gX[t, j] = sum_k R[t, k, j] G[t, k];  gR[t, k, j] = <G[t, k], X[t, j]>;
// gpost[t, k] = <G[t, k], y[t]>;  gy[t] = sum_k post[t, k] G[t, k].
template <class C>
cudaError_t post_res_backward(const C* X, const C* R, const C* post, const C* y, const C* G, C* gX, C* gR, C* gpost,
                              C* gy, MixShape s, cudaStream_t stream);

}  // namespace dynarch::cuda

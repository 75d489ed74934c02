// Raw CUDA launchers of the mHC sub-layer input (mhc.md §3; the CPU op is
// kernels/cpu/streams/mhc_input.h); no torch here. The GEMMs are not in here:
// the binding computes raw = vec(X) phi^T before the forward and
// d vec(X) += draw phi, dphi = draw^T vec(X) after the backward (cuBLAS).
// Contiguous arrays, C = float or double; K = n^2 + 2n, n <= kMaxMhcN:
//   X (T, n, D) stream-major rows of n*D; raw (T, K); rho (T); u (T, D);
//   pre, post (T, n); Z (T, n, n) destination x source; bias (K); alpha (3).
// The forward (one warp per token):
//   rho = (mean(X[t]^2) + rms_eps)^(-1/2);  m = raw[t] rho
//   pre  = sigma(alpha0 m[0:n] + b[0:n]) + pre_eps,  post = 2 sigma(alpha1 m[n:2n] + b[n:2n])
//   Z[t, k, j] = alpha2 m[2n + j n + k] + b[2n + j n + k],  u = sum_j pre_j X[t, j]
// A null gradient pointer is a zero gradient; a null dX skips dX.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dynarch::cuda {

constexpr int kMaxMhcN = 8;

struct MhcShape {
  int64_t T, n, D;
};

template <class C>
cudaError_t mhc_pre_forward(const C* X, const C* raw, const C* bias, const C* alpha, double rms_eps, double pre_eps,
                            C* rho, C* u, C* pre, C* post, C* Z, MhcShape s, cudaStream_t stream);

// Given gu (T, D), gpre, gpost (T, n), gZ (T, n, n) and the forward's saved
// raw, rho, pre, post: per token
//   dlogit (T, K): gradient of the pre-activation alpha_g m + b (dbias = its column sums);
//   dalpha_part (T, 3): that token's share of dalpha (dalpha = its column sums);
//   draw (T, K) = alpha_g dlogit rho: the gradient of raw (the binding's two GEMMs);
//   dX = pre_j gu + (d rho) d rho / d X: dX without the GEMM's draw phi.
template <class C>
cudaError_t mhc_pre_backward(const C* X, const C* raw, const C* rho, const C* pre, const C* post, const C* alpha,
                             const C* gu, const C* gpre, const C* gpost, const C* gZ, double pre_eps, C* dX, C* draw,
                             C* dlogit, C* dalpha_part, MhcShape s, cudaStream_t stream);

// mhc_project (kernels/cpu/streams/stream_mix.h): m (T, K) = raw rho for any K,
// rho as above over the N = n*D elements of V (T, N).
template <class C>
cudaError_t mhc_project_forward(const C* V, const C* raw, double eps, C* rho, C* m, int64_t T, int64_t N, int64_t K,
                                cudaStream_t stream);
// Given G = dm (T, K): Gs = G rho (the gradient of raw) and, unless dV is null,
// dV = -rho^3 / N <G, raw> V (dV without the GEMM's Gs phi).
template <class C>
cudaError_t mhc_project_backward(const C* V, const C* raw, const C* rho, const C* G, C* Gs, C* dV, int64_t T,
                                 int64_t N, int64_t K, cudaStream_t stream);

}  // namespace dynarch::cuda

// Per-token stream mixing kernels of one HC / mHC sub-layer (mhc.md §1, §3, §8).
// Custom autograd ops over contiguous float32 / float64 tensors (all inputs of
// one call share the dtype), parallel over tokens, vectorised over D; each has
// a plain tensor-op reference used by the tests and bench/bench_sinkhorn.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// Branch input: X (T, n, D), pre (T, n) -> u (T, D), u[t] = sum_j pre[t,j] * X[t,j,:].
at::Tensor hc_pre_mix(const at::Tensor& X, const at::Tensor& pre);
at::Tensor hc_pre_mix_reference(const at::Tensor& X, const at::Tensor& pre);

// Fused post + residual merge: X (T,n,D), R (T,n,n) [dest, src], post (T,n), y (T,D)
// -> X' (T,n,D), X'[t,k,:] = sum_j R[t,k,j] * X[t,j,:] + post[t,k] * y[t,:].
at::Tensor hc_post_res(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y);
at::Tensor hc_post_res_reference(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post,
                                 const at::Tensor& y);

// mHC coefficient projection in one pass over v = vec(X[t]) (stream-major, n*D):
// m (T, K) = (v . phi^T) * rho,  rho = (mean(v^2) + eps)^(-1/2) over all n*D elements.
// phi (K, n*D) is stored like a Linear weight. Never runs under autocast.
at::Tensor mhc_project(const at::Tensor& X, const at::Tensor& phi, double eps);
at::Tensor mhc_project_reference(const at::Tensor& X, const at::Tensor& phi, double eps);

}  // namespace dynarch

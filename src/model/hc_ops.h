// Per-token stream mixing of one HC/mHC sub-layer (mhc.md §1, §3, §8).
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// X (T, n, D), pre (T, n) -> u (T, D) = sum_j pre[:, j] X[:, j, :]
at::Tensor hc_pre_mix(const at::Tensor& X, const at::Tensor& pre);
at::Tensor hc_pre_mix_reference(const at::Tensor& X, const at::Tensor& pre);
// X'[t,k,:] = sum_j R[t,k,j] X[t,j,:] + post[t,k] y[t,:]
at::Tensor hc_post_res(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y);
at::Tensor hc_post_res_reference(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post,
                                 const at::Tensor& y);
// m = (vec(X) . phi^T) * rsqrt(mean(vec(X)^2) + eps); X (T, n, D), phi (K, n*D) -> (T, K)
at::Tensor mhc_project(const at::Tensor& X, const at::Tensor& phi, double eps);
at::Tensor mhc_project_reference(const at::Tensor& X, const at::Tensor& phi, double eps);

}  // namespace dynarch

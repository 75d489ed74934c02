// TEMPORARY: tensor-op stand-ins until the fused kernels land (branch sk).
#include <ATen/ATen.h>

#include "core/compat.h"
#include "model/hc_ops.h"
#include "model/sinkhorn.h"

namespace dynarch {

at::Tensor sinkhorn_reference(const at::Tensor& Z, const SinkhornOptions& o) {
  auto M = at::exp(Z - std::get<0>(Z.max(-2, true)));
  for (int s = 0; s < o.iters; ++s) {
    M = M / (M.sum(-2, true) + o.eps);
    M = M / (M.sum(-1, true) + o.eps);
  }
  return M;
}
at::Tensor sinkhorn(const at::Tensor& Z, const SinkhornOptions& o) { return sinkhorn_reference(Z, o); }

at::Tensor hc_pre_mix_reference(const at::Tensor& X, const at::Tensor& pre) {
  return (X * pre.unsqueeze(-1)).sum(-2);
}
at::Tensor hc_pre_mix(const at::Tensor& X, const at::Tensor& pre) { return hc_pre_mix_reference(X, pre); }
at::Tensor hc_post_res_reference(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post,
                                 const at::Tensor& y) {
  return at::matmul(R, X) + post.unsqueeze(-1) * y.unsqueeze(-2);
}
at::Tensor hc_post_res(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y) {
  return hc_post_res_reference(X, R, post, y);
}
at::Tensor mhc_project_reference(const at::Tensor& X, const at::Tensor& phi, double eps) {
  auto v = X.reshape({X.size(0), -1});
  auto rho = at::rsqrt(v.pow(2).mean(-1, true) + eps);
  return at::mm(v, phi.t()) * rho;
}
at::Tensor mhc_project(const at::Tensor& X, const at::Tensor& phi, double eps) {
  return mhc_project_reference(X, phi, eps);
}

}  // namespace dynarch

#include "model/layers/norm.h"

#include <torch/torch.h>

#include "core/forward_context.h"
#include "kernels/cpu/dense/norm_act.h"

namespace dynarch {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  // fp32 statistics; fp64 stays fp64 (tests).
  auto ft = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto xf = x.to(ft);
  auto inv = at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return xf * inv * w.to(ft);
}

at::Tensor gated_rms_norm(const at::Tensor& y, const at::Tensor& z, const at::Tensor& w, double eps) {
  auto ft = y.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto g = y.to(ft) * at::silu(z.to(ft));
  return rms_norm(g, w, eps);
}

at::Tensor RMSNorm::forward(const at::Tensor& x) const {
  return ForwardContext::cpu_kernels_apply(x) ? rms_norm_fused(x, weight, eps_) : rms_norm(x, weight, eps_);
}

RMSNorm::RMSNorm(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

}  // namespace dynarch

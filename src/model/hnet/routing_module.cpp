#include "model/hnet/routing_module.h"

#include <torch/torch.h>

#include "core/compat.h"
#include "core/forward_context.h"
#include "kernels/cpu/dense/linear_rows.h"

namespace dynarch {

RoutingModule::RoutingModule(int64_t d) {
  q_proj_layer = register_module("q_proj_layer", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
  k_proj_layer = register_module("k_proj_layer", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
  torch::NoGradGuard ng;
  q_proj_layer->weight.copy_(torch::eye(d));
  k_proj_layer->weight.copy_(torch::eye(d));
}

namespace {
at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}
// cos similarity along the last dim with the 1e-12 norm floor of F.normalize.
at::Tensor cosine(const at::Tensor& a, const at::Tensor& b) {
  namespace F = torch::nn::functional;
  auto o = F::NormalizeFuncOptions().dim(-1).eps(1e-12);
  return (F::normalize(a, o) * F::normalize(b, o)).sum(-1);
}
}  // namespace

Routing RoutingModule::forward(const at::Tensor& x_in, const at::Tensor& mask, const at::Tensor& prev) {
  // Boundaries are discontinuous in p: always decide them in fp32 or better.
  compat::AutocastScope no_autocast(false);
  auto ct = compute_type(x_in);
  auto x = x_in.to(ct);
  auto Wq = q_proj_layer->weight.to(ct), Wk = k_proj_layer->weight.to(ct);
  const int64_t B = x.size(0), L = x.size(1);
  auto k = at::linear(x, Wk);
  at::Tensor q_prev;  // W_q applied to the previous vector of every position
  if (prev.defined())
    q_prev = at::linear(at::cat({prev.to(ct).unsqueeze(1), x.narrow(1, 0, L - 1)}, 1), Wq);
  else
    q_prev = at::linear(x.narrow(1, 0, std::max<int64_t>(L - 1, 0)), Wq);
  at::Tensor p;
  if (prev.defined()) {
    p = at::clamp(0.5 * (1.0 - cosine(q_prev, k)), 0.0, 1.0);
  } else {
    auto rest = at::clamp(0.5 * (1.0 - cosine(q_prev, k.narrow(1, 1, L - 1))), 0.0, 1.0);
    p = at::cat({at::ones({B, 1}, rest.options()), rest}, 1);  // p = 1 at every sequence start
  }
  auto b = p.detach() > 0.5;  // strict: p = 0.5 is not a boundary
  if (mask.defined()) b = b.logical_and(mask);
  auto c = at::where(b, p, 1.0 - p);
  return {p, b, c};
}

at::Tensor RoutingModule::step_p(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& seen) {
  compat::AutocastScope no_autocast(false);
  auto ct = compute_type(x);
  auto q = linear_rows(prev.to(ct), q_proj_layer->weight.to(ct)).contiguous();
  auto k = linear_rows(x.to(ct), k_proj_layer->weight.to(ct)).contiguous();
  const int64_t B = q.size(0), D = q.size(1);
  auto sv = seen.to(at::kBool).contiguous();
  if (!ForwardContext::cpu_kernels_apply(q)) {  // the same formula in tensor ops (any device)
    const double eps = 1e-12;
    auto cos = (q * k).sum(-1) / (q.pow(2).sum(-1).sqrt().clamp_min(eps) * k.pow(2).sum(-1).sqrt().clamp_min(eps));
    return at::where(sv, (0.5 * (1 - cos)).clamp(0, 1), at::ones_like(cos));
  }
  auto p = at::empty({B}, q.options());
  // One loop instead of ~10 small ops per byte: p = clamp(0.5 (1 - cos), 0, 1), 1 if unseen.
  AT_DISPATCH_FLOATING_TYPES(ct, "route_step", [&] {
    const scalar_t* pq = q.data_ptr<scalar_t>();
    const scalar_t* pk = k.data_ptr<scalar_t>();
    const bool* ps = sv.data_ptr<bool>();
    scalar_t* pp = p.data_ptr<scalar_t>();
    for (int64_t b = 0; b < B; ++b) {
      scalar_t qq = 0, kk = 0, qk = 0;
      for (int64_t d = 0; d < D; ++d) {
        qq += pq[b * D + d] * pq[b * D + d];
        kk += pk[b * D + d] * pk[b * D + d];
        qk += pq[b * D + d] * pk[b * D + d];
      }
      const scalar_t eps = 1e-12;
      const scalar_t cos = qk / (std::max(std::sqrt(qq), eps) * std::max(std::sqrt(kk), eps));
      pp[b] = ps[b] ? std::min(std::max(scalar_t(0.5) * (scalar_t(1) - cos), scalar_t(0)), scalar_t(1)) : scalar_t(1);
    }
  });
  return p;
}

}  // namespace dynarch

#include "model/hmodel/routing_head.h"

#include <torch/torch.h>

#include <limits>

namespace dynarch {

at::Tensor topk_mask(const at::Tensor& z, int k) {
  auto idx = std::get<1>(z.topk(std::min<int64_t>(k, z.size(-1)), -1));
  return at::zeros(z.sizes(), z.options().dtype(at::kBool)).scatter(-1, idx, true);
}

at::Tensor sharpen(const at::Tensor& z, const SharpenOptions& o) {
  const double inf = std::numeric_limits<double>::infinity();
  auto dense_of = [&](const at::Tensor& zz) -> at::Tensor {
    if (o.mode == "sigmoid") return at::sigmoid(o.alpha * zz);
    if (o.mode == "power")
      return at::softmax(o.alpha * (o.power_of == "softmax" ? at::log_softmax(zz, -1) : at::log_sigmoid(zz)), -1);
    return at::softmax(o.alpha * zz, -1);
  };
  auto dense = dense_of(z);
  if (o.topk <= 0 || o.topk >= z.size(-1)) return dense;
  auto keep = topk_mask(z.detach(), o.topk);
  at::Tensor hard = o.mode == "sigmoid" ? dense * keep.to(dense.scalar_type()) : dense_of(z.masked_fill(~keep, -inf));
  if (o.straight_through) return dense + (hard - dense).detach();
  return hard;
}

at::Tensor harden(const at::Tensor& c, int topk, double threshold) {
  if (topk <= 0 && threshold <= 0) return c;
  auto keep = topk_mask(c, 1);  // the largest entry always survives
  at::Tensor m = topk > 0 ? topk_mask(c, topk) : at::ones(c.sizes(), c.options().dtype(at::kBool));
  if (threshold > 0) m = m.logical_and(c >= threshold);
  m = m.logical_or(keep);
  auto h = c * m.to(c.scalar_type());
  auto scale = c.sum(-1, true) / h.sum(-1, true).clamp_min(1e-30);
  return h * scale;
}

RoutingHead::RoutingHead(int64_t d, int64_t K, int hidden) {
  norm = register_module("norm", std::make_shared<RMSNorm>(d));
  if (hidden > 0) fc = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(d, hidden).bias(true)));
  proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(hidden > 0 ? hidden : d, K).bias(true)));
}

at::Tensor RoutingHead::forward(const at::Tensor& h) {
  const auto dt = h.scalar_type();
  auto u = norm->forward(h).to(dt);
  if (fc) u = at::gelu(at::linear(u, fc->weight.to(dt), fc->bias.to(dt)));
  return at::linear(u, proj->weight.to(dt), proj->bias.to(dt));
}

void RoutingHead::init(const std::string& preset, double c, int self_t, const std::vector<int>& next, bool negative_rest,
                       double sigma) {
  torch::NoGradGuard ng;
  proj->weight.normal_(0.0, sigma);
  if (fc) {
    fc->weight.normal_(0.0, sigma);
    fc->bias.zero_();
  }
  auto& b = proj->bias;
  b.zero_();
  if (preset == "uniform") return;
  if (negative_rest) b.fill_(-c);
  for (int k : next) b[k] = c;
  if (preset == "self_next" && self_t >= 0) b[self_t] = c;
}

}  // namespace dynarch

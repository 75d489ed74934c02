#include "model/residual/residual.h"

#include <torch/torch.h>

#include <cstdio>
#include <set>

#include "core/compat.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "kernels/cpu/streams/stream_mix.h"
#include "kernels/cpu/streams/mhc_input.h"
#include "model/layers/norm.h"

namespace dynarch {
using nlohmann::json;

namespace {
// The kernel entries (fast mode) or their tensor-op references (reference
// mode). The entries dispatch by device themselves: the CPU kernel, the CUDA
// kernel through its hook, or their reference on any other device
// (docs/architecture.md "kernels/cuda"; tests/test_device.cpp).
bool fast_kernels(const at::Tensor&) { return !forward_context().reference(); }
}  // namespace

// ---------------------------------------------------------------- shared mixing

at::Tensor settle(const Streams& s) {
  if (!s.pending()) return s.X;
  const int64_t n = s.X.size(-2), D = s.X.size(-1);
  auto Xt = s.X.reshape({-1, n, D});
  auto out = fast_kernels(Xt) ? hc_post_res(Xt, s.R, s.post, s.y) : hc_post_res_reference(Xt, s.R, s.post, s.y);
  return out.view(s.X.sizes());
}

Streams StreamConnection::mix(const at::Tensor& X, const at::Tensor& pre, const at::Tensor& res,
                              const at::Tensor& post, const Branch& F, at::Tensor u) {
  const auto lead = X.sizes().slice(0, X.dim() - 2).vec();
  const int64_t n = X.size(-2), D = X.size(-1);
  auto Xt = X.reshape({-1, n, D});
  if (auto* rec = forward_context().connections)
    rec->push_back({trace_name, pre.detach(), post.detach(), res.detach()});
  if (!u.defined()) u = fast_kernels(Xt) ? hc_pre_mix(Xt, pre) : hc_pre_mix_reference(Xt, pre);
  auto ushape = lead;
  ushape.push_back(D);
  auto y = F(u.view(ushape)).to(X.scalar_type()).reshape({-1, D});
  return Streams{X, res, post, y};
}

// ---------------------------------------------------------------- HC

HyperConnection::HyperConnection(const ResidualConfig& c, int64_t d, int sublayer) : StreamConnection(c) {
  const int64_t n = c.n;
  auto am = torch::zeros({n});
  am[sublayer % n] = 1.0;  // home stream: with replicated streams this reads h exactly
  static_pre = register_parameter("static_pre", am);
  static_res = register_parameter("static_res", torch::eye(n));
  static_post = register_parameter("static_post", torch::ones({n}));
  w_pre = register_parameter("w_pre", torch::zeros({d}));
  w_res = register_parameter("w_res", torch::zeros({n, d}));
  w_post = register_parameter("w_post", torch::zeros({d}));
  gate_alpha = register_parameter("gate_alpha", torch::full({1}, c.alpha_init));
  gate_beta = register_parameter("gate_beta", torch::full({1}, c.alpha_init));
  norm_weight = register_parameter("norm_weight", torch::ones({d}));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> HyperConnection::maps(const at::Tensor& X) {
  compat::AutocastScope fp32(false);  // coefficients stay in the stream dtype
  const auto dt = X.scalar_type();
  const int64_t n = cfg.n;
  auto xn = rms_norm(X, norm_weight.to(dt));                                     // per stream, (T, n, D)
  auto W = at::cat({w_pre.to(dt).unsqueeze(0), w_res.to(dt), w_post.to(dt).unsqueeze(0)}, 0);  // (n+2, D)
  auto dyn = at::matmul(xn, W.t());                                              // (T, n, n+2)
  if (cfg.tanh) dyn = at::tanh(dyn);
  auto sa = gate_alpha.to(dt), sb = gate_beta.to(dt);
  auto pre = sa * dyn.select(-1, 0) + static_pre.to(dt);
  // H_res[k, i] = s_a tanh(x_i W_r)[k] + Ar[i, k]: source i on the middle axis -> transpose.
  auto res = (sa * dyn.narrow(-1, 1, n) + static_res.to(dt)).transpose(-1, -2).contiguous();
  auto post = sb * dyn.select(-1, n + 1) + static_post.to(dt);
  return {pre, res, post};
}

Streams HyperConnection::forward(const Streams& S, const Branch& F) {
  auto X = settle(S);
  auto [pre, res, post] = maps(X.reshape({-1, X.size(-2), X.size(-1)}));
  return mix(X, pre, res, post, F);
}

// ---------------------------------------------------------------- mHC

ManifoldHyperConnection::ManifoldHyperConnection(const ResidualConfig& c, int64_t dm, int sublayer)
    : StreamConnection(c), d(dm) {
  const int64_t n = c.n, K = n * n + 2 * n;
  auto phi0 = torch::zeros({K, n * d});
  auto b = torch::zeros({K});
  const int64_t home = sublayer % n;
  auto bres = b.narrow(0, 2 * n, n * n).view({n, n});  // [source j, destination k]
  if (c.init == "identity") {
    const double cc = c.init_c;
    b.narrow(0, 0, n).fill_(-cc);
    b[home] = cc;
    bres.copy_(cc * (2 * torch::eye(n) - 1));
  } else if (c.init == "zero") {
    const double bound = std::sqrt(6.0 / double(K + n * d));  // Xavier-uniform
    phi0.uniform_(-bound, bound);
  } else if (c.init == "lucidrains") {
    b[home] = 1.0;
    b.narrow(0, n, n).fill_(1.0);
    bres.copy_(torch::eye(n));
  }
  phi = register_parameter("phi", phi0);
  bias = register_parameter("bias", b);
  alpha = register_parameter("alpha", torch::full({3}, c.alpha_init));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ManifoldHyperConnection::compute(const Streams& S,
                                                                                            at::Tensor& Xt) {
  compat::AutocastScope fp32(false);
  const auto dt = S.X.scalar_type();
  const int64_t n = S.X.size(-2), D = S.X.size(-1);
  // Logits of source j -> destination k sit at 2n + j n + k; Z is destination x source.
  MhcPre p;
  if (fast_kernels(S.X) && S.pending() && !forward_context().variants.separate_merge) {
    auto m = mhc_merge_pre(S.X.reshape({-1, n, D}), S.R, S.post, S.y, phi.to(dt), bias.to(dt), alpha.to(dt),
                           cfg.rms_eps, cfg.pre_eps);
    Xt = m.X;
    p = m.p;
  } else {
    Xt = settle(S).reshape({-1, n, D});
    p = fast_kernels(Xt) ? mhc_pre(Xt, phi.to(dt), bias.to(dt), alpha.to(dt), cfg.rms_eps, cfg.pre_eps)
                  : mhc_pre_reference(Xt, phi.to(dt), bias.to(dt), alpha.to(dt), cfg.rms_eps, cfg.pre_eps);
  }
  // SK returns exactly 1 for n = 1 (the only doubly-stochastic 1x1 matrix).
  const SinkhornOptions so{cfg.sinkhorn_iters, cfg.sinkhorn_eps, cfg.eps_after_first};
  auto res = fast_kernels(p.Z) ? sinkhorn(p.Z, so) : sinkhorn_reference(p.Z.contiguous(), so);
  return {p.u, p.pre, res, p.post};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ManifoldHyperConnection::maps(const at::Tensor& X) {
  at::Tensor Xt;
  auto [u, pre, res, post] = compute(Streams{X}, Xt);
  return {pre, res, post};
}

Streams ManifoldHyperConnection::forward(const Streams& S, const Branch& F) {
  at::Tensor Xt;
  auto [u, pre, res, post] = compute(S, Xt);
  return mix(Xt.view(S.X.sizes()), pre, res, post, F, u);
}

std::shared_ptr<StreamConnection> make_connection(const ResidualConfig& c, int64_t d, int sublayer) {
  if (c.type == "hc") return std::make_shared<HyperConnection>(c, d, sublayer);
  if (c.type == "mhc") return std::make_shared<ManifoldHyperConnection>(c, d, sublayer);
  return nullptr;
}

// ---------------------------------------------------------------- stack ends

StreamEnds::StreamEnds(const ResidualConfig& c, int64_t d) : cfg(c) {
  const int64_t n = c.n;
  if (c.stream_embed) stream_embed = register_parameter("stream_embed", torch::zeros({n, d}));
  if (c.collapse == "learned") {
    head_phi = register_parameter("head_phi", torch::zeros({n, n * d}));
    // sigma(b) = 1/n: the learned collapse starts as the mean.
    const double b0 = n > 1 ? -std::log(double(n - 1)) : 6.9;
    head_bias = register_parameter("head_bias", torch::full({n}, b0));
    head_alpha = register_parameter("head_alpha", torch::full({1}, c.alpha_init));
  }
}

at::Tensor StreamEnds::expand(const at::Tensor& x) const {
  auto sizes = x.sizes().vec();
  sizes.insert(sizes.end() - 1, cfg.n);
  auto X = x.unsqueeze(-2).expand(sizes);
  if (stream_embed.defined()) return X + stream_embed.to(x.scalar_type());
  return X.contiguous();
}

at::Tensor StreamEnds::collapse(const Streams& S) const {
  if (!S.pending() || !fast_kernels(S.X) || cfg.collapse == "learned") return collapse(settle(S));
  // c * sum_k X'_k = sum_j (c sum_k R_kj) Xp_j + (c sum_k post_k) y: one pre-mix
  // pass over Xp instead of the merge, its (T, n, D) output and the reduction.
  const int64_t n = S.X.size(-2), D = S.X.size(-1);
  const double c = cfg.collapse == "mean" ? 1.0 / double(n) : 1.0;
  auto w = S.R.sum(-2) * c, s = S.post.sum(-1, /*keepdim=*/true) * c;  // R: (T, destination, source)
  auto out = hc_pre_mix(S.X.reshape({-1, n, D}), w) + s * S.y;
  auto shape = S.X.sizes().vec();
  shape.erase(shape.end() - 2);
  return out.view(shape);
}

at::Tensor StreamEnds::collapse(const at::Tensor& X) const {
  if (cfg.collapse == "mean") return X.mean(-2);
  if (cfg.collapse == "sum") return X.sum(-2);
  compat::AutocastScope fp32(false);
  const auto dt = X.scalar_type();
  const int64_t n = cfg.n, D = X.size(-1);
  auto Xt = X.reshape({-1, n, D});
  auto m = fast_kernels(Xt) ? mhc_project(Xt, head_phi.to(dt), cfg.rms_eps)
                     : mhc_project_reference(Xt, head_phi.to(dt), cfg.rms_eps);
  auto w = at::sigmoid(head_alpha.to(dt) * m + head_bias.to(dt)) + 1e-6;
  auto out = fast_kernels(Xt) ? hc_pre_mix(Xt, w) : hc_pre_mix_reference(Xt, w);
  auto shape = X.sizes().vec();
  shape.erase(shape.end() - 2);
  return out.view(shape);
}

// ---------------------------------------------------------------- names

void name_connections(torch::nn::Module& root, const std::string& prefix) {
  for (auto& item : root.named_modules(prefix, /*include_self=*/false)) {
    if (auto c = std::dynamic_pointer_cast<StreamConnection>(item.value())) c->trace_name = item.key();
  }
}

bool residual_param(const std::string& name) {
  return name.find(".hc_") != std::string::npos || name.rfind("hc_", 0) == 0;
}

bool residual_no_decay(const std::string& name) {
  if (!residual_param(name)) return false;
  auto tail = name.substr(name.rfind('.') + 1);
  return tail != "phi" && tail != "head_phi" && tail.rfind("w_", 0) != 0;
}

}  // namespace dynarch

#include "model/routing.h"

#include <ATen/record_function.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "core/compat.h"
#include "model/fused_decode.h"

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

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
  auto p = at::empty({B}, q.options());
  auto sv = seen.to(at::kBool).contiguous();
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

Chunked downsample(const at::Tensor& x, const at::Tensor& b) {
  const int64_t B = x.size(0), L = x.size(1);
  auto counts = b.sum(1);  // (B)
  const int64_t M = std::max<int64_t>(counts.max().item<int64_t>(), 1);
  // Key t + L (1 - b): boundary rows first, each group in time order.
  auto key = at::arange(L, at::kLong).unsqueeze(0) + L * (1 - b.to(at::kLong));
  auto index = std::get<1>(key.sort(1)).narrow(1, 0, M);
  auto xs = x.gather(1, index.unsqueeze(-1).expand({B, M, x.size(2)}));
  auto mask = at::arange(M, at::kLong).unsqueeze(0) < counts.unsqueeze(1);
  return {xs, mask, index};
}

namespace {

template <class T>
void ema_forward_kernel(const T* z, const T* P, const T* h0, T* out, int64_t B, int64_t M, int64_t D) {
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T* prev = h0 ? h0 + b * D : nullptr;
      for (int64_t j = 0; j < M; ++j) {
        const T p = P[b * M + j];
        const T* zj = z + (b * M + j) * D;
        T* oj = out + (b * M + j) * D;
        for (int64_t d = 0; d < D; ++d) oj[d] = p * zj[d] + (prev ? (T(1) - p) * prev[d] : T(0));
        prev = oj;
      }
    }
  });
}

template <class T>
void ema_backward_kernel(const T* z, const T* P, const T* h0, const T* out, const T* g, T* gz, T* gP, T* gh0,
                         int64_t B, int64_t M, int64_t D) {
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> delta(D);
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(delta.begin(), delta.end(), T(0));
      for (int64_t j = M - 1; j >= 0; --j) {
        const T* gj = g + (b * M + j) * D;
        // delta_j = g_j + (1 - P_{j+1}) delta_{j+1}
        const T carry = j + 1 < M ? T(1) - P[b * M + j + 1] : T(0);
        for (int64_t d = 0; d < D; ++d) delta[d] = gj[d] + carry * delta[d];
        const T p = P[b * M + j];
        const T* zj = z + (b * M + j) * D;
        const T* prev = j > 0 ? out + (b * M + j - 1) * D : (h0 ? h0 + b * D : nullptr);
        T* gzj = gz + (b * M + j) * D;
        T dp = 0;
        for (int64_t d = 0; d < D; ++d) {
          gzj[d] = p * delta[d];
          dp += delta[d] * (zj[d] - (prev ? prev[d] : T(0)));
        }
        gP[b * M + j] = dp;
      }
      if (gh0) {
        const T p0 = M > 0 ? P[b * M] : T(1);
        for (int64_t d = 0; d < D; ++d) gh0[b * D + d] = (T(1) - p0) * delta[d];
      }
    }
  });
}

struct EmaFn : torch::autograd::Function<EmaFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& z_in, const at::Tensor& P_in,
                            const at::Tensor& h0_in) {
    auto ct = z_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    auto z = z_in.to(ct).contiguous(), P = P_in.to(ct).contiguous();
    auto h0 = h0_in.defined() ? h0_in.to(ct).contiguous() : at::Tensor();
    const int64_t B = z.size(0), M = z.size(1), D = z.size(2);
    auto out = at::empty_like(z);
    AT_DISPATCH_FLOATING_TYPES(ct, "ema_forward", [&] {
      ema_forward_kernel<scalar_t>(z.data_ptr<scalar_t>(), P.data_ptr<scalar_t>(),
                                   h0.defined() ? h0.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(), B, M, D);
    });
    ctx->save_for_backward({z, P, h0.defined() ? h0 : at::Tensor(), out});
    ctx->saved_data["has_h0"] = h0.defined();
    ctx->saved_data["in_dtype"] = (int64_t)z_in.scalar_type();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto s = ctx->get_saved_variables();
    auto z = s[0], P = s[1], h0 = s[2], out = s[3];
    const bool has_h0 = ctx->saved_data["has_h0"].toBool();
    auto g = grads[0].to(z.scalar_type()).contiguous();
    const int64_t B = z.size(0), M = z.size(1), D = z.size(2);
    auto gz = at::empty_like(z), gP = at::empty_like(P);
    auto gh0 = has_h0 ? at::empty_like(h0) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ema_backward", [&] {
      ema_backward_kernel<scalar_t>(z.data_ptr<scalar_t>(), P.data_ptr<scalar_t>(),
                                    has_h0 ? h0.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(),
                                    g.data_ptr<scalar_t>(), gz.data_ptr<scalar_t>(), gP.data_ptr<scalar_t>(),
                                    has_h0 ? gh0.data_ptr<scalar_t>() : nullptr, B, M, D);
    });
    auto in_dtype = (at::ScalarType)ctx->saved_data["in_dtype"].toInt();
    return {gz.to(in_dtype), gP, gh0};
  }
};

struct SteFn : torch::autograd::Function<SteFn> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& c) { return at::ones_like(c); }
  static tensor_list backward(AutogradContext*, tensor_list g) { return {g[0]}; }
};

}  // namespace

at::Tensor ema_scan(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0) {
  // Custom functions in 1.13 cannot take undefined inputs: a zero h0 is the same recurrence.
  RECORD_USER_SCOPE("dynarch::ema_scan");  // names the forward loops in profiles
  return EmaFn::apply(z, P, h0.defined() ? h0 : at::zeros({z.size(0), z.size(2)}, z.options()));
}

at::Tensor ema_scan_reference(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0) {
  std::vector<at::Tensor> outs;
  auto prev = h0.defined() ? h0 : at::zeros({z.size(0), z.size(2)}, z.options());
  for (int64_t j = 0; j < z.size(1); ++j) {
    auto p = P.select(1, j).unsqueeze(-1);
    prev = p * z.select(1, j) + (1 - p) * prev;
    outs.push_back(prev);
  }
  return at::stack(outs, 1);
}

at::Tensor dechunk(const at::Tensor& zhat, const at::Tensor& p_chunks, const at::Tensor& b, const at::Tensor& h0) {
  auto P = at::clamp(p_chunks, 1e-4, 1 - 1e-4);
  auto zbar = ema_scan(zhat, P, h0);
  auto k = b.to(at::kLong).cumsum(1) - 1;  // (B, L)
  const int64_t B = zbar.size(0), D = zbar.size(2);
  if (h0.defined()) {
    zbar = at::cat({h0.to(zbar.scalar_type()).unsqueeze(1), zbar}, 1);
    k = k + 1;
  } else {
    k = k.clamp_min(0);  // cannot happen for fresh sequences: p_0 = 1 makes b_0 = 1
  }
  return zbar.gather(1, k.unsqueeze(-1).expand({B, k.size(1), D}));
}

at::Tensor ste_ones(const at::Tensor& c) { return SteFn::apply(c); }

RatioStats ratio_loss(const at::Tensor& p, const at::Tensor& b, const at::Tensor& mask, double N) {
  auto m = mask.defined() ? mask.to(p.scalar_type()) : at::ones_like(p);
  auto n = m.sum();
  auto F = (b.to(p.scalar_type()) * m).sum() / n;  // no gradient (b is hard)
  auto G = (p * m).sum() / n;
  auto loss = N / (N - 1.0) * ((N - 1.0) * F * G + (1.0 - F) * (1.0 - G));
  return {loss, F.item<double>(), G.item<double>()};
}

}  // namespace dynarch

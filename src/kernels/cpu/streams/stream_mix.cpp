#include "kernels/cpu/streams/stream_mix.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "core/compat.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "kernels/cpu/streams/stream_rows.h"

#if DYNARCH_CUDA
#include "kernels/cuda/streams/mhc_pre_cuda.h"
#include "kernels/cuda/streams/mhc_pre_launch.h"  // kMaxMhcN
#include "kernels/cuda/streams/stream_mix_cuda.h"
#endif

// Plain loops over contiguous rows of D elements: GCC vectorises them at -O3;
// the dot products use row_dot (several accumulators, no -ffast-math here).

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

namespace {

// o = a * x (assign) or o += a * x.
template <class C>
inline void axpy(C* o, C a, const C* x, int64_t d, bool assign) {
  if (assign)
    for (int64_t i = 0; i < d; ++i) o[i] = a * x[i];
  else
    for (int64_t i = 0; i < d; ++i) o[i] += a * x[i];
}

// Tokens per parallel task: about 16k elements of work.
int64_t grain(int64_t per_token) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, per_token)); }

// X must be (T, n, D), n >= 1, float32/float64 (any device: the references
// run anywhere; the kernels below hand non-CPU tensors to them).
void check_state(const char* op, const at::Tensor& X) {
  check(X.dim() == 3 && X.size(1) >= 1,
        std::string(op) + ": X must have shape (T, n, D) with n >= 1, got " + c10::str(X.sizes()));
  check(X.scalar_type() == at::kFloat || X.scalar_type() == at::kDouble,
        std::string(op) + ": X must be float32 or float64, got " + c10::toString(X.scalar_type()));
}

// t must have exactly `shape` and X's dtype and device.
void check_like(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef shape, const at::Tensor& X) {
  check(t.sizes() == shape, std::string(op) + ": " + name + " must have shape " + c10::str(shape) + " for X of shape " +
                                c10::str(X.sizes()) + ", got " + c10::str(t.sizes()));
  check(t.scalar_type() == X.scalar_type(), std::string(op) + ": " + name + " has dtype " +
                                                c10::toString(t.scalar_type()) + " but X has " +
                                                c10::toString(X.scalar_type()));
  check(t.device() == X.device(), std::string(op) + ": " + name + " is on " + t.device().str() + " but X is on " +
                                      X.device().str());
}

struct PreMixFn : torch::autograd::Function<PreMixFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& pre_in) {
    auto X = X_in.contiguous(), pre = pre_in.contiguous();
    const int64_t T = X.size(0), n = X.size(1), D = X.size(2);
    auto u = at::empty({T, D}, X.options());
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "hc_pre_mix_fwd", [&] {
      using C = scalar_t;
      const C *px = X.data_ptr<C>(), *pp = pre.data_ptr<C>();
      C* pu = u.data_ptr<C>();
      at::parallel_for(0, T, grain(n * D), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          premix_token(px + t * n * D, pp + t * n, n, D, pu + t * D);
      });
    });
    ctx->save_for_backward({X, pre});
    return u;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto s = ctx->get_saved_variables();
    auto X = s[0], pre = s[1];
    auto G = grads[0].to(X.scalar_type()).contiguous();
    const int64_t T = X.size(0), n = X.size(1), D = X.size(2);
    const bool need_x = ctx->needs_input_grad(0), need_p = ctx->needs_input_grad(1);
    at::Tensor gX = need_x ? at::empty_like(X) : at::Tensor(), gp = need_p ? at::empty_like(pre) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "hc_pre_mix_bwd", [&] {
      using C = scalar_t;
      const C *px = X.data_ptr<C>(), *pp = pre.data_ptr<C>(), *pg = G.data_ptr<C>();
      C* pgx = need_x ? gX.data_ptr<C>() : nullptr;
      C* pgp = need_p ? gp.data_ptr<C>() : nullptr;
      at::parallel_for(0, T, grain(n * D), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          if (need_x)
            for (int64_t j = 0; j < n; ++j) axpy(pgx + (t * n + j) * D, pp[t * n + j], pg + t * D, D, true);
          if (need_p) stream_dots(px + t * n * D, pg + t * D, n, D, pgp + t * n);
        }
      });
    });
    return {gX, gp};
  }
};

struct PostResFn : torch::autograd::Function<PostResFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& R_in,
                            const at::Tensor& post_in, const at::Tensor& y_in) {
    auto X = X_in.contiguous(), R = R_in.contiguous(), post = post_in.contiguous(), y = y_in.contiguous();
    const int64_t T = X.size(0), n = X.size(1), D = X.size(2);
    auto out = at::empty_like(X);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "hc_post_res_fwd", [&] {
      using C = scalar_t;
      const C *px = X.data_ptr<C>(), *pr = R.data_ptr<C>(), *pp = post.data_ptr<C>(), *py = y.data_ptr<C>();
      C* po = out.data_ptr<C>();
      const Merge<C> mg{px, pr, pp, py};
      at::parallel_for(0, T, grain(n * n * D), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) merge_token(mg, t, n, D, po + t * n * D);
      });
    });
    ctx->save_for_backward({X, R, post, y});
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto s = ctx->get_saved_variables();
    auto X = s[0], R = s[1], post = s[2], y = s[3];
    auto G = grads[0].to(X.scalar_type()).contiguous();
    const int64_t T = X.size(0), n = X.size(1), D = X.size(2);
    bool need[4];
    at::Tensor g[4];
    for (int i = 0; i < 4; ++i) {
      need[i] = ctx->needs_input_grad(i);
      if (need[i]) g[i] = at::empty_like(s[i]);
    }
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "hc_post_res_bwd", [&] {
      using C = scalar_t;
      const C *px = X.data_ptr<C>(), *pr = R.data_ptr<C>(), *pp = post.data_ptr<C>(), *py = y.data_ptr<C>();
      const C* pg = G.data_ptr<C>();
      C* out[4];
      for (int i = 0; i < 4; ++i) out[i] = need[i] ? g[i].data_ptr<C>() : nullptr;
      const Merge<C> mg{px, pr, pp, py};
      at::parallel_for(0, T, grain(n * n * D), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          merge_token_backward(mg, t, n, D, pg + t * n * D, out[0] ? out[0] + t * n * D : nullptr,
                               out[1] ? out[1] + t * n * n : nullptr, out[2] ? out[2] + t * n : nullptr,
                               out[3] ? out[3] + t * D : nullptr);
      });
    });
    return {g[0], g[1], g[2], g[3]};
  }
};

struct ProjectFn : torch::autograd::Function<ProjectFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& phi_in, double eps) {
    compat::AutocastScope fp32(false);
    auto X = X_in.contiguous(), phi = phi_in.contiguous();
    const int64_t T = X.size(0), N = X.size(1) * X.size(2);
    auto V = X.view({T, N});
    auto P = at::mm(V, phi.t());  // BLAS; the RMS scale is applied after (mhc.md §3)
    auto rho = at::empty({T}, X.options());
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_project_fwd", [&] {
      using C = scalar_t;
      const C* pv = V.data_ptr<C>();
      C* pr = rho.data_ptr<C>();
      at::parallel_for(0, T, grain(N), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) pr[t] = C(1) / std::sqrt(row_dot(pv + t * N, pv + t * N, N) / C(N) + C(eps));
      });
    });
    ctx->save_for_backward({X, phi, rho, P});
    return P * rho.unsqueeze(1);
  }

  // m_k = P_k rho with P = v phi^T and d rho / d v = -rho^3 v / N, so
  // dv = (G rho) phi - rho^3 / N * <G, P> v   and   dphi = (G rho)^T v.
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    compat::AutocastScope fp32(false);
    auto s = ctx->get_saved_variables();
    auto X = s[0], phi = s[1], rho = s[2], P = s[3];
    const int64_t T = X.size(0), N = X.size(1) * X.size(2), K = phi.size(0);
    auto G = grads[0].to(X.scalar_type()).contiguous();
    auto V = X.view({T, N});
    auto Gs = G * rho.unsqueeze(1);
    at::Tensor gX, gphi;
    if (ctx->needs_input_grad(1)) gphi = at::mm(Gs.t(), V);
    if (ctx->needs_input_grad(0)) {
      auto gV = at::mm(Gs, phi);
      AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_project_bwd", [&] {
        using C = scalar_t;
        const C *pv = V.data_ptr<C>(), *pg = G.data_ptr<C>(), *pp = P.data_ptr<C>(), *pr = rho.data_ptr<C>();
        C* po = gV.data_ptr<C>();
        at::parallel_for(0, T, grain(N), [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const C r = pr[t];
            const C coef = -r * r * r / C(N) * row_dot(pg + t * K, pp + t * K, K);
            axpy(po + t * N, coef, pv + t * N, N, false);
          }
        });
      });
      gX = gV.view(X.sizes());
    }
    return {gX, gphi, at::Tensor()};
  }
};

void check_project(const at::Tensor& X, const at::Tensor& phi, double eps) {
  check_state("mhc_project", X);
  const int64_t N = X.size(1) * X.size(2);
  check(N >= 1, "mhc_project: X must have n*D >= 1 elements per token, got " + c10::str(X.sizes()));
  check(phi.dim() == 2, "mhc_project: phi must have shape (K, n*D), got " + c10::str(phi.sizes()));
  check_like("mhc_project", "phi", phi, {phi.size(0), N}, X);
  check(std::isfinite(eps) && eps >= 0, "mhc_project: eps must be finite and >= 0, got " + std::to_string(eps));
}

}  // namespace

at::Tensor hc_pre_mix(const at::Tensor& X, const at::Tensor& pre) {
#if DYNARCH_CUDA
  if (X.is_cuda()) return cuda::hc_pre_mix(X, pre);  // the CUDA hook (docs/architecture.md, "kernels/cuda")
#endif
  check_state("hc_pre_mix", X);
  check_like("hc_pre_mix", "pre", pre, {X.size(0), X.size(1)}, X);
  if (!ForwardContext::cpu_kernels_apply(X)) return hc_pre_mix_reference(X, pre);
  RECORD_USER_SCOPE("dynarch::hc_pre_mix");  // names the forward loops in profiles
  return PreMixFn::apply(X, pre);
}

at::Tensor hc_pre_mix_reference(const at::Tensor& X, const at::Tensor& pre) {
  check_state("hc_pre_mix", X);
  check_like("hc_pre_mix", "pre", pre, {X.size(0), X.size(1)}, X);
  return (X * pre.unsqueeze(-1)).sum(1);
}

namespace {
void check_post_res(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y) {
  check_state("hc_post_res", X);
  const int64_t T = X.size(0), n = X.size(1), D = X.size(2);
  check_like("hc_post_res", "R", R, {T, n, n}, X);
  check_like("hc_post_res", "post", post, {T, n}, X);
  check_like("hc_post_res", "y", y, {T, D}, X);
}
}  // namespace

at::Tensor hc_post_res(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y) {
  RECORD_USER_SCOPE("dynarch::hc_post_res");  // names the forward loops in profiles
#if DYNARCH_CUDA
  if (X.is_cuda()) return cuda::hc_post_res(X, R, post, y);  // the CUDA hook (docs/architecture.md, "kernels/cuda")
#endif
  check_post_res(X, R, post, y);
  if (!ForwardContext::cpu_kernels_apply(X)) return hc_post_res_reference(X, R, post, y);
  return PostResFn::apply(X, R, post, y);
}

at::Tensor hc_post_res_reference(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post,
                                 const at::Tensor& y) {
  check_post_res(X, R, post, y);
  // One broadcast multiply-add per source stream (at::matmul would run one
  // tiny GEMM per token on LibTorch 1.13).
  auto out = post.unsqueeze(-1) * y.unsqueeze(1);
  for (int64_t j = 0; j < X.size(1); ++j) out = out + R.select(2, j).unsqueeze(-1) * X.select(1, j).unsqueeze(1);
  return out;
}

at::Tensor mhc_project(const at::Tensor& X, const at::Tensor& phi, double eps) {
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda"); n above the kernel's cap: the reference.
  if (X.is_cuda() && (X.dim() != 3 || X.size(1) <= cuda::kMaxMhcN)) return cuda::mhc_project(X, phi, eps);
#endif
  check_project(X, phi, eps);
  if (!ForwardContext::cpu_kernels_apply(X)) return mhc_project_reference(X, phi, eps);
  return ProjectFn::apply(X, phi, eps);
}

at::Tensor mhc_project_reference(const at::Tensor& X, const at::Tensor& phi, double eps) {
  check_project(X, phi, eps);
  compat::AutocastScope fp32(false);
  auto V = X.reshape({X.size(0), -1});
  auto rho = ((V * V).mean(-1, true) + eps).rsqrt();
  return at::matmul(V, phi.t()) * rho;
}

}  // namespace dynarch

#include "kernels/cuda/streams/mhc_pre_cuda.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "core/compat.h"
#include "kernels/cuda/binding.h"
#include "kernels/cuda/streams/mhc_pre_launch.h"

namespace dynarch::cuda {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

template <class C>
const C* opt_cptr(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<C>() : nullptr;
}

// A defined incoming gradient as a contiguous tensor of dtype st; undefined stays undefined (a zero).
at::Tensor grad_in(const at::Tensor& g, at::ScalarType st) {
  return g.defined() ? g.to(st).contiguous() : at::Tensor();
}

struct MhcPreCudaFn : torch::autograd::Function<MhcPreCudaFn> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& phi_in,
                             const at::Tensor& bias_in, const at::Tensor& alpha_in, double rms_eps, double pre_eps) {
    c10::cuda::CUDAGuard guard(X_in.device());
    compat::AutocastScope fp32(false);  // the GEMM in X's dtype (mhc.md §3: coefficients in fp32)
    auto X = X_in.contiguous(), phi = phi_in.contiguous(), bias = bias_in.contiguous(), alpha = alpha_in.contiguous();
    const MhcShape s{X.size(0), X.size(1), X.size(2)};
    auto raw = at::mm(X.view({s.T, s.n * s.D}), phi.t());  // cuBLAS; rho is applied in the kernel
    auto opt = X.options();
    auto rho = at::empty({s.T}, opt), u = at::empty({s.T, s.D}, opt);
    auto pre = at::empty({s.T, s.n}, opt), post = at::empty({s.T, s.n}, opt), Z = at::empty({s.T, s.n, s.n}, opt);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_pre_cuda_fwd", [&] {
      using C = scalar_t;
      check_launch(mhc_pre_forward<C>(X.data_ptr<C>(), raw.data_ptr<C>(), bias.data_ptr<C>(), alpha.data_ptr<C>(),
                                      rms_eps, pre_eps, rho.data_ptr<C>(), u.data_ptr<C>(), pre.data_ptr<C>(),
                                      post.data_ptr<C>(), Z.data_ptr<C>(), s, stream()),
                   "mhc_pre forward");
    });
    ctx->save_for_backward({X, phi, alpha, raw, rho, pre, post});
    ctx->saved_data["pre_eps"] = pre_eps;
    return {u, pre, post, Z};
  }

  // g: du, dpre, dpost, dZ (any undefined). The kernel gives draw (the gradient
  // of raw = vec(X) phi^T) and dX without its GEMM term; then
  // d vec(X) += draw phi and dphi = draw^T vec(X) on cuBLAS.
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto sv = ctx->get_saved_variables();
    auto X = sv[0], phi = sv[1], alpha = sv[2], raw = sv[3], rho = sv[4], pre = sv[5], post = sv[6];
    c10::cuda::CUDAGuard guard(X.device());
    compat::AutocastScope fp32(false);
    const MhcShape s{X.size(0), X.size(1), X.size(2)};
    const int64_t K = s.n * s.n + 2 * s.n, nD = s.n * s.D;
    const auto st = X.scalar_type();
    auto du = grad_in(g[0], st), dpre = grad_in(g[1], st), dpost = grad_in(g[2], st), dZ = grad_in(g[3], st);
    auto opt = X.options();
    at::Tensor dX = ctx->needs_input_grad(0) ? at::empty_like(X) : at::Tensor();
    auto draw = at::empty({s.T, K}, opt), dlogit = at::empty({s.T, K}, opt), dalpha_part = at::empty({s.T, 3}, opt);
    AT_DISPATCH_FLOATING_TYPES(st, "mhc_pre_cuda_bwd", [&] {
      using C = scalar_t;
      check_launch(mhc_pre_backward<C>(X.data_ptr<C>(), raw.data_ptr<C>(), rho.data_ptr<C>(), pre.data_ptr<C>(),
                                       post.data_ptr<C>(), alpha.data_ptr<C>(), opt_cptr<C>(du), opt_cptr<C>(dpre),
                                       opt_cptr<C>(dpost), opt_cptr<C>(dZ), ctx->saved_data["pre_eps"].toDouble(),
                                       dX.defined() ? dX.data_ptr<C>() : nullptr, draw.data_ptr<C>(),
                                       dlogit.data_ptr<C>(), dalpha_part.data_ptr<C>(), s, stream()),
                   "mhc_pre backward");
    });
    auto V = X.view({s.T, nD});
    if (dX.defined()) dX.view({s.T, nD}).addmm_(draw, phi);
    at::Tensor dphi = ctx->needs_input_grad(1) ? at::mm(draw.t(), V) : at::Tensor();
    at::Tensor dbias = ctx->needs_input_grad(2) ? dlogit.sum(0) : at::Tensor();
    at::Tensor dalpha = ctx->needs_input_grad(3) ? dalpha_part.sum(0) : at::Tensor();
    return {dX, dphi, dbias, dalpha, at::Tensor(), at::Tensor()};
  }
};

struct MhcProjectCudaFn : torch::autograd::Function<MhcProjectCudaFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& phi_in, double eps) {
    c10::cuda::CUDAGuard guard(X_in.device());
    compat::AutocastScope fp32(false);
    auto X = X_in.contiguous(), phi = phi_in.contiguous();
    const int64_t T = X.size(0), N = X.size(1) * X.size(2), K = phi.size(0);
    auto V = X.view({T, N});
    auto raw = at::mm(V, phi.t());
    auto rho = at::empty({T}, X.options()), m = at::empty({T, K}, X.options());
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_project_cuda_fwd", [&] {
      using C = scalar_t;
      check_launch(mhc_project_forward<C>(V.data_ptr<C>(), raw.data_ptr<C>(), eps, rho.data_ptr<C>(),
                                          m.data_ptr<C>(), T, N, K, stream()),
                   "mhc_project forward");
    });
    ctx->save_for_backward({X, phi, raw, rho});
    return m;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto sv = ctx->get_saved_variables();
    auto X = sv[0], phi = sv[1], raw = sv[2], rho = sv[3];
    c10::cuda::CUDAGuard guard(X.device());
    compat::AutocastScope fp32(false);
    const int64_t T = X.size(0), N = X.size(1) * X.size(2), K = phi.size(0);
    auto G = grads[0].to(X.scalar_type()).contiguous();
    auto V = X.view({T, N});
    auto Gs = at::empty({T, K}, X.options());
    at::Tensor dV = ctx->needs_input_grad(0) ? at::empty({T, N}, X.options()) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_project_cuda_bwd", [&] {
      using C = scalar_t;
      check_launch(mhc_project_backward<C>(V.data_ptr<C>(), raw.data_ptr<C>(), rho.data_ptr<C>(), G.data_ptr<C>(),
                                           Gs.data_ptr<C>(), dV.defined() ? dV.data_ptr<C>() : nullptr, T, N, K,
                                           stream()),
                   "mhc_project backward");
    });
    if (dV.defined()) dV.addmm_(Gs, phi);
    at::Tensor dphi = ctx->needs_input_grad(1) ? at::mm(Gs.t(), V) : at::Tensor();
    return {dV.defined() ? dV.view(X.sizes()) : at::Tensor(), dphi, at::Tensor()};
  }
};

// X (T, n, D) fp32/fp64 on CUDA with n >= 1.
void check_mhc_state(const char* op, const at::Tensor& X) {
  check_tensor(op, "X", X, X.device(), {at::kFloat, at::kDouble});
  check(X.is_cuda(), std::string(op) + ": X must be a CUDA tensor, got one on " + X.device().str());
  check(X.dim() == 3 && X.size(1) >= 1,
        std::string(op) + ": X must have shape (T, n, D) with n >= 1, got " + c10::str(X.sizes()));
}

// t on X's device, with X's dtype and `shape`.
void check_mhc_like(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef shape, const at::Tensor& X) {
  check_tensor(op, name, t, X.device(), {X.scalar_type()});
  check_shape(op, name, t, shape);
}

}  // namespace

MhcPreOut mhc_pre(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha,
                  double rms_eps, double pre_eps) {
  check_mhc_state("mhc_pre", X);
  const int64_t n = X.size(1), K = n * n + 2 * n;
  check(n <= kMaxMhcN, "mhc_pre: X must have n <= " + std::to_string(kMaxMhcN) + " streams on CUDA, got " +
                           c10::str(X.sizes()));
  check_mhc_like("mhc_pre", "phi", phi, {K, n * X.size(2)}, X);
  check_mhc_like("mhc_pre", "bias", bias, {K}, X);
  check_mhc_like("mhc_pre", "alpha", alpha, {3}, X);
  auto r = MhcPreCudaFn::apply(X, phi, bias, alpha, rms_eps, pre_eps);
  return {r[0], r[1], r[2], r[3]};
}

at::Tensor mhc_project(const at::Tensor& X, const at::Tensor& phi, double eps) {
  check_mhc_state("mhc_project", X);
  check(X.size(1) * X.size(2) >= 1, "mhc_project: X must have n*D >= 1 elements per token, got " + c10::str(X.sizes()));
  check(phi.dim() == 2, "mhc_project: phi must have shape (K, n*D), got " + c10::str(phi.sizes()));
  check_mhc_like("mhc_project", "phi", phi, {phi.size(0), X.size(1) * X.size(2)}, X);
  check(std::isfinite(eps) && eps >= 0, "mhc_project: eps must be finite and >= 0, got " + std::to_string(eps));
  return MhcProjectCudaFn::apply(X, phi, eps);
}

}  // namespace dynarch::cuda

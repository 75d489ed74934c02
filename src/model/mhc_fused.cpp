#include "model/mhc_fused.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <mutex>
#include <vector>

#include "core/compat.h"
#include "core/error.h"
#include "model/hc_ops.h"

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

namespace {

void check_args(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha) {
  check(X.dim() == 3 && X.size(1) >= 1, "mhc_pre: X must have shape (T, n, D), got " + c10::str(X.sizes()));
  const int64_t n = X.size(1), D = X.size(2), K = n * n + 2 * n;
  check(phi.dim() == 2 && phi.size(0) == K && phi.size(1) == n * D,
        "mhc_pre: phi must have shape (" + std::to_string(K) + ", " + std::to_string(n * D) + "), got " +
            c10::str(phi.sizes()));
  check(bias.dim() == 1 && bias.size(0) == K, "mhc_pre: bias must have shape (" + std::to_string(K) + ")");
  check(alpha.dim() == 1 && alpha.size(0) == 3, "mhc_pre: alpha must have shape (3)");
  const auto st = X.scalar_type();
  check(st == at::kFloat || st == at::kDouble, "mhc_pre: X must be float32 or float64");
  check(phi.scalar_type() == st && bias.scalar_type() == st && alpha.scalar_type() == st,
        "mhc_pre: phi, bias and alpha must have the dtype of X");
}

// Vectorised dot product (the pragma cannot sit inside the dispatch macro).
template <class C>
C dot(const C* a, const C* b, int64_t n) {
  C s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class C>
C sigmoid(C x) {
  return C(1) / (C(1) + std::exp(-x));
}

struct MhcPreFn : torch::autograd::Function<MhcPreFn> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& phi_in,
                             const at::Tensor& bias_in, const at::Tensor& alpha_in, double rms_eps, double pre_eps) {
    compat::AutocastScope fp32(false);
    auto X = X_in.contiguous(), phi = phi_in.contiguous(), bias = bias_in.contiguous(), alpha = alpha_in.contiguous();
    const int64_t T = X.size(0), n = X.size(1), D = X.size(2), nD = n * D, K = n * n + 2 * n;
    auto raw = at::mm(X.view({T, nD}), phi.t());  // one BLAS pass over the streams
    auto u = at::empty({T, D}, X.options()), pre = at::empty({T, n}, X.options());
    auto post = at::empty({T, n}, X.options()), Z = at::empty({T, n, n}, X.options());
    auto rho = at::empty({T}, X.options());
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_pre_fwd", [&] {
      using C = scalar_t;
      const C *px = X.data_ptr<C>(), *pr = raw.data_ptr<C>(), *pb = bias.data_ptr<C>(), *pa = alpha.data_ptr<C>();
      C *pu = u.data_ptr<C>(), *ppre = pre.data_ptr<C>(), *ppost = post.data_ptr<C>(), *pz = Z.data_ptr<C>();
      C* prho = rho.data_ptr<C>();
      at::parallel_for(0, T, 16, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const C* v = px + t * nD;
          const C ss = dot(v, v, nD);
          const C r = C(1) / std::sqrt(ss / C(nD) + C(rms_eps));
          prho[t] = r;
          const C* m = pr + t * K;  // raw; m = raw * r
          C* pj = ppre + t * n;
          for (int64_t j = 0; j < n; ++j) {
            pj[j] = sigmoid(pa[0] * m[j] * r + pb[j]) + C(pre_eps);
            ppost[t * n + j] = C(2) * sigmoid(pa[1] * m[n + j] * r + pb[n + j]);
            for (int64_t k = 0; k < n; ++k)  // source j -> destination k
              pz[(t * n + k) * n + j] = pa[2] * m[2 * n + j * n + k] * r + pb[2 * n + j * n + k];
          }
          C* ur = pu + t * D;
          for (int64_t d = 0; d < D; ++d) ur[d] = pj[0] * v[d];
          for (int64_t j = 1; j < n; ++j) {
            const C w = pj[j];
            const C* xj = v + j * D;
            for (int64_t d = 0; d < D; ++d) ur[d] += w * xj[d];
          }
        }
      });
    });
    ctx->save_for_backward({X, phi, alpha, raw, rho, pre, post});
    ctx->saved_data["pre_eps"] = pre_eps;
    return {u, pre, post, Z};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    compat::AutocastScope fp32(false);
    auto sv = ctx->get_saved_variables();
    auto X = sv[0], phi = sv[1], alpha = sv[2], raw = sv[3], rho = sv[4], pre = sv[5], post = sv[6];
    const double pre_eps = ctx->saved_data["pre_eps"].toDouble();
    const int64_t T = X.size(0), n = X.size(1), D = X.size(2), nD = n * D, K = n * n + 2 * n;
    auto opt = X.options();
    auto grad = [&](int i, at::IntArrayRef shape) {
      return g[i].defined() ? g[i].to(X.scalar_type()).contiguous() : at::zeros(shape, opt);
    };
    auto du = grad(0, {T, D}), dpre = grad(1, {T, n}), dpost = grad(2, {T, n}), dZ = grad(3, {T, n, n});
    auto dX = at::empty_like(X), Gr = at::empty({T, K}, opt);
    auto dbias = at::zeros({K}, opt), dalpha = at::zeros({3}, opt);
    std::mutex mu;
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_pre_bwd", [&] {
      using C = scalar_t;
      const C *px = X.data_ptr<C>(), *pa = alpha.data_ptr<C>(), *praw = raw.data_ptr<C>();
      const C *prho = rho.data_ptr<C>(), *ppre = pre.data_ptr<C>(), *ppost = post.data_ptr<C>();
      const C *pdu = du.data_ptr<C>(), *pdpre = dpre.data_ptr<C>(), *pdpost = dpost.data_ptr<C>(), *pdz = dZ.data_ptr<C>();
      C *pdx = dX.data_ptr<C>(), *pgr = Gr.data_ptr<C>();
      at::parallel_for(0, T, 16, [&](int64_t t0, int64_t t1) {
        std::vector<C> db(K, C(0)), gm(K);
        C da[3] = {0, 0, 0};
        for (int64_t t = t0; t < t1; ++t) {
          const C* v = px + t * nD;
          const C* dur = pdu + t * D;
          const C r = prho[t];
          const C* rw = praw + t * K;
          for (int64_t j = 0; j < n; ++j) {
            const C* xj = v + j * D;
            const C s = ppre[t * n + j] - C(pre_eps);
            const C zp = (pdpre[t * n + j] + dot(xj, dur, D)) * s * (C(1) - s);
            gm[j] = pa[0] * zp;
            db[j] += zp;
            da[0] += zp * rw[j] * r;
            const C sp = ppost[t * n + j] / C(2);
            const C zq = pdpost[t * n + j] * C(2) * sp * (C(1) - sp);
            gm[n + j] = pa[1] * zq;
            db[n + j] += zq;
            da[1] += zq * rw[n + j] * r;
            for (int64_t k = 0; k < n; ++k) {
              const int64_t idx = 2 * n + j * n + k;
              const C zr = pdz[(t * n + k) * n + j];
              gm[idx] = pa[2] * zr;
              db[idx] += zr;
              da[2] += zr * rw[idx] * r;
            }
          }
          // m = raw * rho: d raw = gm * rho; d rho = <gm, raw>; d rho / d v = -rho^3 / (nD) v.
          C drho = 0;
          for (int64_t i = 0; i < K; ++i) {
            pgr[t * K + i] = gm[i] * r;
            drho += gm[i] * rw[i];
          }
          const C cv = -drho * r * r * r / C(nD);
          C* dv = pdx + t * nD;
          for (int64_t j = 0; j < n; ++j) {
            const C w = ppre[t * n + j];
            const C* xj = v + j * D;
            C* dj = dv + j * D;
            for (int64_t d = 0; d < D; ++d) dj[d] = cv * xj[d] + w * dur[d];
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        C* pdb = dbias.data_ptr<C>();
        for (int64_t i = 0; i < K; ++i) pdb[i] += db[i];
        for (int i = 0; i < 3; ++i) dalpha.data_ptr<C>()[i] += da[i];
      });
    });
    // d v += Gr · phi for all tokens as one GEMM (K = n² + 2n rows of phi): BLAS beats
    // K per-token axpys over n·D (≈ 3× on the backward's largest loop).
    dX.view({T, nD}).addmm_(Gr, phi);
    auto dphi = at::mm(Gr.t(), X.view({T, nD}));
    return {dX, dphi, dbias, dalpha, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

MhcPre mhc_pre(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha,
               double rms_eps, double pre_eps) {
  check_args(X, phi, bias, alpha);
  RECORD_USER_SCOPE("dynarch::mhc_pre");  // names the forward loops in profiles
  auto r = MhcPreFn::apply(X, phi, bias, alpha, rms_eps, pre_eps);
  return {r[0], r[1], r[2], r[3]};
}

MhcPre mhc_pre_reference(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha,
                         double rms_eps, double pre_eps) {
  check_args(X, phi, bias, alpha);
  const int64_t T = X.size(0), n = X.size(1);
  auto m = mhc_project_reference(X, phi, rms_eps);
  auto pre = at::sigmoid(alpha[0] * m.narrow(1, 0, n) + bias.narrow(0, 0, n)) + pre_eps;
  auto post = 2.0 * at::sigmoid(alpha[1] * m.narrow(1, n, n) + bias.narrow(0, n, n));
  auto Z = (alpha[2] * m.narrow(1, 2 * n, n * n) + bias.narrow(0, 2 * n, n * n)).view({T, n, n}).transpose(1, 2);
  return {hc_pre_mix_reference(X, pre), pre, post, Z};
}

}  // namespace dynarch

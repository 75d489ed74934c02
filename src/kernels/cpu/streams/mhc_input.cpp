#include "kernels/cpu/streams/mhc_input.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "core/compat.h"
#include "core/forward_context.h"
#include "core/error.h"
#include "kernels/cpu/gemm/bmm.h"
#include "kernels/cpu/streams/stream_mix.h"
#include "kernels/cpu/gemm/skinny_gemm.h"
#include "kernels/cpu/streams/stream_rows.h"

#if DYNARCH_CUDA
#include "kernels/cuda/streams/mhc_pre_cuda.h"
#include "kernels/cuda/streams/mhc_pre_launch.h"  // kMaxMhcN
#endif

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

void check_merge(const at::Tensor& Xp, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y) {
  const int64_t T = Xp.size(0), n = Xp.size(1), D = Xp.size(2);
  auto like = [&](const at::Tensor& t, const char* name, at::IntArrayRef shape) {
    check(t.sizes() == shape && t.scalar_type() == Xp.scalar_type(),
          std::string("mhc_merge_pre: ") + name + " must have shape " + c10::str(shape) + " and the dtype of X, got " +
              c10::str(t.sizes()) + " " + c10::toString(t.scalar_type()));
  };
  like(R, "R", {T, n, n});
  like(post, "post", {T, n});
  like(y, "y", {T, D});
}

template <class C>
C sigmoid(C x) {
  return C(1) / (C(1) + std::exp(-x));
}

// Tokens per cache block: the block's n·D rows stay in L2 between its passes
// (merge, projection GEMM, coefficients, pre-mix; and the same in backward).
constexpr int64_t kBlock = 16;

// raw = X phi^T for M token rows: the AVX-512 skinny kernel (packed phi) or BLAS.
template <class C>
void project_block(int64_t M, int64_t nD, int64_t K, const C* x, const C* phi, const PackedPhi* packed, C* raw) {
  if constexpr (std::is_same_v<C, float>)
    if (packed) return skinny_project(M, x, *packed, raw);
  gemm_rowmajor<C>(false, true, int(M), int(K), int(nD), x, int(nD), phi, int(nD), C(0), raw, int(K));
}

// dX += Gr phi for M token rows.
template <class C>
void expand_add_block(int64_t M, int64_t nD, int64_t K, const C* gr, const C* phi, bool skinny, C* dx) {
  if constexpr (std::is_same_v<C, float>)
    if (skinny) return skinny_expand_add(M, nD, K, gr, phi, dx);
  gemm_rowmajor<C>(false, false, int(M), int(nD), int(K), gr, int(K), phi, int(nD), C(1), dx, int(nD));
}

// dphi += Gr^T X for M token rows (skinny path only, fp32).
template <class C>
void dphi_add_block(int64_t M, int64_t nD, int64_t K, const C* gr, const C* x, C* dphi) {
  if constexpr (std::is_same_v<C, float>) skinny_dphi_add(M, nD, K, gr, x, dphi);
}

// Forward of both ops. With a merge (R defined) X is formed block by block from
// (Xin = Xp, R, post0, y) and returned; otherwise X = Xin. Outputs: [X,] u, pre, post, Z.
tensor_list pre_forward(const at::Tensor& Xin, const at::Tensor& R, const at::Tensor& post0, const at::Tensor& y,
                        const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha, double rms_eps,
                        double pre_eps, at::Tensor& X, at::Tensor& raw, at::Tensor& rho) {
  const bool merge = R.defined();
  const int64_t T = Xin.size(0), n = Xin.size(1), D = Xin.size(2), nD = n * D, K = n * n + 2 * n;
  X = merge ? at::empty_like(Xin) : Xin;
  raw = at::empty({T, K}, Xin.options());
  rho = at::empty({T}, Xin.options());
  auto u = at::empty({T, D}, X.options()), pre = at::empty({T, n}, X.options());
  auto post = at::empty({T, n}, X.options()), Z = at::empty({T, n, n}, X.options());
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_pre_fwd", [&] {
    using C = scalar_t;
    Merge<C> mg;
    if (merge) mg = {Xin.data_ptr<C>(), R.data_ptr<C>(), post0.data_ptr<C>(), y.data_ptr<C>()};
    const C *pb = bias.data_ptr<C>(), *pa = alpha.data_ptr<C>(), *pphi = phi.data_ptr<C>();
    C *px = X.data_ptr<C>(), *pr = raw.data_ptr<C>(), *prho = rho.data_ptr<C>();
    C *pu = u.data_ptr<C>(), *ppre = pre.data_ptr<C>(), *ppost = post.data_ptr<C>(), *pz = Z.data_ptr<C>();
    PackedPhi packed;
    const bool skinny = std::is_same_v<C, float> && skinny_gemm_available(K);
    if (skinny) pack_phi(reinterpret_cast<const float*>(pphi), K, nD, packed);  // C is float here
    const int64_t nblk = (T + kBlock - 1) / kBlock;
    at::parallel_for(0, nblk, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t t0 = b * kBlock, t1 = std::min(T, t0 + kBlock);
        if (merge)
          for (int64_t t = t0; t < t1; ++t) merge_token(mg, t, n, D, px + t * nD);
        // raw = X phi^T for the block, while its rows are in cache.
        project_block<C>(t1 - t0, nD, K, px + t0 * nD, pphi, skinny ? &packed : nullptr, pr + t0 * K);
        for (int64_t t = t0; t < t1; ++t) {
          const C* v = px + t * nD;
          const C r = C(1) / std::sqrt(row_dot(v, v, nD) / C(nD) + C(rms_eps));
          prho[t] = r;
          const C* m = pr + t * K;  // raw; m = raw * r
          C* pj = ppre + t * n;
          for (int64_t j = 0; j < n; ++j) {
            pj[j] = sigmoid(pa[0] * m[j] * r + pb[j]) + C(pre_eps);
            ppost[t * n + j] = C(2) * sigmoid(pa[1] * m[n + j] * r + pb[n + j]);
            for (int64_t k = 0; k < n; ++k)  // source j -> destination k
              pz[(t * n + k) * n + j] = pa[2] * m[2 * n + j * n + k] * r + pb[2 * n + j * n + k];
          }
          premix_token(v, pj, n, D, pu + t * D);
        }
      }
    });
  });
  if (merge) return {X, u, pre, post, Z};
  return {u, pre, post, Z};
}

// Backward of both ops. g: gradients of the outputs [dX,] du, dpre, dpost, dZ
// (any undefined). Returns dXin, [dR, dpost0, dy,] dphi, dbias, dalpha.
tensor_list pre_backward(const tensor_list& sv, const tensor_list& g, double pre_eps) {
  const bool merge = sv.size() > 7;
  auto X = sv[0], phi = sv[1], alpha = sv[2], raw = sv[3], rho = sv[4], pre = sv[5], post = sv[6];
  const int64_t T = X.size(0), n = X.size(1), D = X.size(2), nD = n * D, K = n * n + 2 * n;
  auto opt = X.options();
  const int o = merge ? 1 : 0;
  auto grad = [&](int i, at::IntArrayRef shape) {
    return g[i].defined() ? g[i].to(X.scalar_type()).contiguous() : at::zeros(shape, opt);
  };
  at::Tensor dXout = merge && g[0].defined() ? g[0].to(X.scalar_type()).contiguous() : at::Tensor();
  auto du = grad(o, {T, D}), dpre = grad(o + 1, {T, n}), dpost = grad(o + 2, {T, n}), dZ = grad(o + 3, {T, n, n});
  auto dXin = at::empty_like(X), Gr = at::empty({T, K}, opt);
  auto dbias = at::zeros({K}, opt), dalpha = at::zeros({3}, opt);
  at::Tensor dR, dpost0, dy;
  if (merge) dR = at::empty({T, n, n}, opt), dpost0 = at::empty({T, n}, opt), dy = at::empty({T, D}, opt);
  // With the skinny kernels dφ is summed per thread over its blocks while the
  // rows are in cache, and the merged X is recomputed from Xp in the block
  // instead of read back: neither pass over X leaves the cache.
  const bool skinny = X.scalar_type() == at::kFloat && skinny_gemm_available(K), recompute = merge && skinny;
  at::Tensor dphi = skinny ? at::zeros({K, nD}, opt) : at::Tensor();
  std::mutex mu;
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "mhc_pre_bwd", [&] {
    using C = scalar_t;
    Merge<C> mg;
    if (merge) mg = {sv[7].data_ptr<C>(), sv[8].data_ptr<C>(), sv[9].data_ptr<C>(), sv[10].data_ptr<C>()};
    const C *px = X.data_ptr<C>(), *pa = alpha.data_ptr<C>(), *praw = raw.data_ptr<C>(), *pphi = phi.data_ptr<C>();
    const C *prho = rho.data_ptr<C>(), *ppre = pre.data_ptr<C>(), *ppost = post.data_ptr<C>();
    const C *pdu = du.data_ptr<C>(), *pdpre = dpre.data_ptr<C>(), *pdpost = dpost.data_ptr<C>(), *pdz = dZ.data_ptr<C>();
    const C* pdxo = dXout.defined() ? dXout.data_ptr<C>() : nullptr;
    C *pdxin = dXin.data_ptr<C>(), *pgr = Gr.data_ptr<C>();
    const int64_t nblk = (T + kBlock - 1) / kBlock;
    // Each thread's sums of dbias, dalpha (and dphi), added in block order after the
    // loop: the result does not depend on which thread finishes first.
    std::map<int64_t, std::vector<C>> parts;
    at::parallel_for(0, nblk, 1, [&](int64_t b0, int64_t b1) {
      std::vector<C> part(K + 3 + (skinny ? K * nD : 0), C(0)), gm(K), xdu(n);
      C *db = part.data(), *da = db + K, *dphi_part = da + 3;
      std::vector<C> gbuf(merge ? kBlock * nD : 0);  // dX of the block (merge: before the merge's backward)
      std::vector<C> xbuf(recompute ? kBlock * nD : 0);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t t0 = b * kBlock, t1 = std::min(T, t0 + kBlock);
        C* G0 = merge ? gbuf.data() - t0 * nD : pdxin;  // G0 + t * nD: row of token t
        const C* XB = recompute ? xbuf.data() - t0 * nD : px;  // XB + t * nD: X of token t
        if (recompute)  // the same kernel as the forward: the same X, bit for bit
          for (int64_t t = t0; t < t1; ++t) merge_token(mg, t, n, D, xbuf.data() + (t - t0) * nD);
        for (int64_t t = t0; t < t1; ++t) {
          const C* v = XB + t * nD;
          const C* dur = pdu + t * D;
          const C r = prho[t];
          const C* rw = praw + t * K;
          stream_dots(v, dur, n, D, xdu.data());  // <x_j, du>
          for (int64_t j = 0; j < n; ++j) {
            const C s = ppre[t * n + j] - C(pre_eps);
            const C zp = (pdpre[t * n + j] + xdu[j]) * s * (C(1) - s);
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
          C* dv = G0 + t * nD;
          const C* dxo = pdxo ? pdxo + t * nD : nullptr;
          for (int64_t j = 0; j < n; ++j) {
            const C w = ppre[t * n + j];
            const C* xj = v + j * D;
            C* dj = dv + j * D;
            if (dxo)
              for (int64_t d = 0; d < D; ++d) dj[d] = dxo[j * D + d] + cv * xj[d] + w * dur[d];
            else
              for (int64_t d = 0; d < D; ++d) dj[d] = cv * xj[d] + w * dur[d];
          }
        }
        // d X += Gr phi for the block on cached rows (K = n^2 + 2n rows of phi; a
        // GEMM beats K per-token axpys over n·D), and dphi += Gr^T X on the same rows.
        expand_add_block<C>(t1 - t0, nD, K, pgr + t0 * K, pphi, skinny, G0 + t0 * nD);
        if (skinny) dphi_add_block<C>(t1 - t0, nD, K, pgr + t0 * K, XB + t0 * nD, dphi_part);
        if (merge)
          for (int64_t t = t0; t < t1; ++t)
            merge_token_backward(mg, t, n, D, G0 + t * nD, pdxin + t * nD, dR.data_ptr<C>() + t * n * n,
                                 dpost0.data_ptr<C>() + t * n, dy.data_ptr<C>() + t * D);
      }
      std::lock_guard<std::mutex> lock(mu);
      parts.emplace(b0, std::move(part));
    });
    C *pdb = dbias.data_ptr<C>(), *pda = dalpha.data_ptr<C>(), *pd = skinny ? dphi.data_ptr<C>() : nullptr;
    for (const auto& [b0, part] : parts) {
      for (int64_t i = 0; i < K; ++i) pdb[i] += part[i];
      for (int i = 0; i < 3; ++i) pda[i] += part[K + i];
      if (pd)
        for (int64_t i = 0; i < K * nD; ++i) pd[i] += part[K + 3 + i];
    }
  });
  // Otherwise d phi = Gr^T X as one GEMM over all tokens: BLAS per block (inner
  // dimension 16) spent more time packing than multiplying (perf: 15 % of the op).
  if (!skinny) dphi = at::mm(Gr.t(), X.view({T, nD}));
  if (merge) return {dXin, dR, dpost0, dy, dphi, dbias, dalpha};
  return {dXin, dphi, dbias, dalpha};
}

struct MhcPreFn : torch::autograd::Function<MhcPreFn> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& phi_in,
                             const at::Tensor& bias_in, const at::Tensor& alpha_in, double rms_eps, double pre_eps) {
    compat::AutocastScope fp32(false);
    auto phi = phi_in.contiguous(), alpha = alpha_in.contiguous();
    at::Tensor X, raw, rho;
    auto out = pre_forward(X_in.contiguous(), {}, {}, {}, phi, bias_in.contiguous(), alpha, rms_eps, pre_eps, X, raw,
                           rho);
    ctx->save_for_backward({X, phi, alpha, raw, rho, out[1], out[2]});
    ctx->saved_data["pre_eps"] = pre_eps;
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    compat::AutocastScope fp32(false);
    auto r = pre_backward(ctx->get_saved_variables(), g, ctx->saved_data["pre_eps"].toDouble());
    return {r[0], r[1], r[2], r[3], at::Tensor(), at::Tensor()};
  }
};

struct MhcMergePreFn : torch::autograd::Function<MhcMergePreFn> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& Xp_in, const at::Tensor& R_in,
                             const at::Tensor& post0_in, const at::Tensor& y_in, const at::Tensor& phi_in,
                             const at::Tensor& bias_in, const at::Tensor& alpha_in, double rms_eps, double pre_eps) {
    compat::AutocastScope fp32(false);
    auto Xp = Xp_in.contiguous(), R = R_in.contiguous(), post0 = post0_in.contiguous(), y = y_in.contiguous();
    auto phi = phi_in.contiguous(), alpha = alpha_in.contiguous();
    at::Tensor X, raw, rho;
    auto out = pre_forward(Xp, R, post0, y, phi, bias_in.contiguous(), alpha, rms_eps, pre_eps, X, raw, rho);
    // X is an output; the next sub-layer keeps it alive as its own input anyway.
    ctx->save_for_backward({X, phi, alpha, raw, rho, out[2], out[3], Xp, R, post0, y});
    ctx->saved_data["pre_eps"] = pre_eps;
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    compat::AutocastScope fp32(false);
    auto r = pre_backward(ctx->get_saved_variables(), g, ctx->saved_data["pre_eps"].toDouble());
    r.push_back(at::Tensor());
    r.push_back(at::Tensor());
    return r;
  }
};

}  // namespace

MhcPre mhc_pre(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha,
               double rms_eps, double pre_eps) {
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda"); n above the kernel's cap: the reference.
  if (X.is_cuda() && (X.dim() != 3 || X.size(1) <= cuda::kMaxMhcN)) {
    auto r = cuda::mhc_pre(X, phi, bias, alpha, rms_eps, pre_eps);
    return {r.u, r.pre, r.post, r.Z};
  }
#endif
  check_args(X, phi, bias, alpha);
  if (!ForwardContext::cpu_kernels_apply(X)) return mhc_pre_reference(X, phi, bias, alpha, rms_eps, pre_eps);
  RECORD_USER_SCOPE("dynarch::mhc_pre");  // names the forward loops in profiles
  auto r = MhcPreFn::apply(X, phi, bias, alpha, rms_eps, pre_eps);
  return {r[0], r[1], r[2], r[3]};
}

MhcMergePre mhc_merge_pre(const at::Tensor& Xp, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y,
                          const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha, double rms_eps,
                          double pre_eps) {
#if DYNARCH_CUDA
  if (Xp.is_cuda()) {  // the merge and mhc_pre as two CUDA ops (their hooks, which check the arguments)
    auto X = hc_post_res(Xp, R, post, y);
    return {X, mhc_pre(X, phi, bias, alpha, rms_eps, pre_eps)};
  }
#endif
  check_args(Xp, phi, bias, alpha);
  check_merge(Xp, R, post, y);
  if (!ForwardContext::cpu_kernels_apply(Xp))
    return mhc_merge_pre_reference(Xp, R, post, y, phi, bias, alpha, rms_eps, pre_eps);
  RECORD_USER_SCOPE("dynarch::mhc_merge_pre");
  auto r = MhcMergePreFn::apply(Xp, R, post, y, phi, bias, alpha, rms_eps, pre_eps);
  return {r[0], {r[1], r[2], r[3], r[4]}};
}

MhcMergePre mhc_merge_pre_reference(const at::Tensor& Xp, const at::Tensor& R, const at::Tensor& post,
                                    const at::Tensor& y, const at::Tensor& phi, const at::Tensor& bias,
                                    const at::Tensor& alpha, double rms_eps, double pre_eps) {
  check_args(Xp, phi, bias, alpha);
  check_merge(Xp, R, post, y);
  auto X = hc_post_res_reference(Xp, R, post, y);
  return {X, mhc_pre_reference(X, phi, bias, alpha, rms_eps, pre_eps)};
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

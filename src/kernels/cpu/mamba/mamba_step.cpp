#include "kernels/cpu/mamba/mamba_step.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include "core/compat.h"
#include "core/forward_context.h"
#include "kernels/cpu/dense/gemv_rows.h"
#include "kernels/cpu/row_math.h"

#if DYNARCH_CUDA
#include "kernels/cuda/mamba/mamba_step_cuda.h"
#endif

namespace dynarch {

using fused::as;
using fused::gemv_rows_f32;

namespace {

// Three phases so that batch 1 uses every thread where the work is: the causal
// conv (per row, cheap), the SSM update (per row and head: H P N states, the
// bulk), the gated norm (per row, needs all heads).
template <class C>
void mamba_step_kernel(const C* zx, C* conv, const C* cw, const C* cb, const C* dt_bias, const C* A_log, const C* Dp,
                       C* ssm, const C* nw, C* g, int64_t B, int64_t Di, int64_t N, int64_t H, int64_t K, C eps) {
  const int64_t Cd = Di + 2 * N, P = Di / H, W = 2 * Di + 2 * N + H;
  std::vector<C> xcv(B * Cd), yv(B * Di);
  C *xcs = xcv.data(), *ys = yv.data();
  at::parallel_for(0, B, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const C* xBC = zx + b * W + Di;
      C* cs = conv + b * Cd * K;
      C* xc = xcs + b * Cd;
      for (int64_t c = 0; c < Cd; ++c) {  // shift the window, append this step, convolve
        C* w = cs + c * K;
        C acc = cb[c];
        for (int64_t k = 0; k + 1 < K; ++k) {
          w[k] = w[k + 1];
          acc += w[k] * cw[c * K + k];
        }
        w[K - 1] = xBC[c];
        acc += w[K - 1] * cw[c * K + K - 1];
        xc[c] = acc * fused::sigmoid(acc);
      }
    }
  });
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(P * N, 1));
  at::parallel_for(0, B * H, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      const C* dt = zx + b * W + Di + Cd;
      const C* xc = xcs + b * Cd;
      const C* Bv = xc + Di;
      const C* Cv = Bv + N;
      const C v = dt[h] + dt_bias[h];
      const C delta = v > C(20) ? v : std::log1p(std::exp(v));  // softplus (torch's threshold)
      const C dA = std::exp(-delta * std::exp(A_log[h]));
      for (int64_t p = 0; p < P; ++p) {
        const C x = xc[h * P + p], u = delta * x;
        C* S = ssm + ((b * H + h) * P + p) * N;
        C out = 0;
        for (int64_t n = 0; n < N; ++n) {
          S[n] = dA * S[n] + u * Bv[n];
          out += S[n] * Cv[n];
        }
        ys[b * Di + h * P + p] = out + Dp[h] * x;
      }
    }
  });
  at::parallel_for(0, B, 4, [&](int64_t b0, int64_t b1) {
    std::vector<C> zb(Di);
    for (int64_t b = b0; b < b1; ++b)
      fused::gated_norm_row(ys + b * Di, zx + b * W, nw, g + b * Di, zb.data(), Di, eps);
  });
}

}  // namespace

at::Tensor mamba_step_core(const at::Tensor& zx_in, at::Tensor& conv, at::Tensor& ssm, const at::Tensor& conv_w,
                           const at::Tensor& conv_b, const at::Tensor& dt_bias, const at::Tensor& A_log,
                           const at::Tensor& D, const at::Tensor& norm_w, int64_t d_inner, int64_t d_state,
                           double eps) {
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda").
  if (zx_in.is_cuda() || ssm.is_cuda())
    return cuda::mamba_step_core(zx_in, conv, ssm, conv_w, conv_b, dt_bias, A_log, D, norm_w, d_inner, d_state, eps);
#endif
  const auto T = ssm.scalar_type();
  TORCH_CHECK(T == at::kFloat || T == at::kDouble, "mamba_step_core: ssm cache must be fp32 or fp64");
  if (conv.scalar_type() != T || !conv.is_contiguous()) conv = conv.to(T).contiguous();
  TORCH_CHECK(ssm.is_contiguous(), "mamba_step_core: ssm cache must be contiguous");
  const int64_t B = zx_in.size(0), H = dt_bias.size(0), K = conv.size(2);
  auto g = at::empty({B, d_inner}, ssm.options());
  AT_DISPATCH_FLOATING_TYPES(T, "mamba_step_core", [&] {
    using C = scalar_t;
    at::Tensor h[7];
    mamba_step_kernel<C>(as<C>(zx_in, h[0]), conv.data_ptr<C>(), as<C>(conv_w, h[1]), as<C>(conv_b, h[2]),
                         as<C>(dt_bias, h[3]), as<C>(A_log, h[4]), as<C>(D, h[5]), ssm.data_ptr<C>(),
                         as<C>(norm_w, h[6]), g.data_ptr<C>(), B, d_inner, d_state, H, K, (C)eps);
  });
  return g;
}

at::Tensor mamba_block_step(const at::Tensor& r, const MambaBlockWeights& w, at::Tensor& conv, at::Tensor& ssm) {
  auto fp32 = [](const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.is_contiguous(); };
  const auto& v = forward_context().variants;
  if (v.bf16_weights || v.block_gemv || v.unfused_step ||
      at::GradMode::is_enabled() || compat::cpu_autocast_enabled() || r.dim() != 2 || r.size(0) > 2 ||
      r.size(1) != w.in_w.size(1))
    return {};
  const std::initializer_list<const at::Tensor*> tensors = {
      &r, &w.norm_w, &w.in_w, &w.out_w, &w.conv_w, &w.conv_b, &w.dt_bias, &w.A_log, &w.D, &w.gnorm_w, &conv, &ssm};
  for (const at::Tensor* t : tensors)
    if (!fp32(*t)) return {};
  const int64_t B = r.size(0), Dm = r.size(1), Di = w.d_inner, N = w.d_state, H = w.dt_bias.size(0);
  const int64_t W = w.in_w.size(0), K = conv.size(2);
  thread_local std::vector<float> xn, zx, g, y;  // reused across steps: no allocation per byte
  xn.resize(B * Dm), zx.resize(B * W), g.resize(B * Di), y.resize(B * Dm);
  const float *pr = r.data_ptr<float>(), *nw = w.norm_w.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) fused::rms_norm_row(pr + b * Dm, nw, xn.data() + b * Dm, Dm, (float)w.norm_eps);
  auto gemv = v.stream_weights ? gemv_rows_f32<true> : gemv_rows_f32<false>;
  gemv(xn.data(), B, Dm, w.in_w.data_ptr<float>(), nullptr, W, zx.data());
  mamba_step_kernel<float>(zx.data(), conv.data_ptr<float>(), w.conv_w.data_ptr<float>(), w.conv_b.data_ptr<float>(),
                           w.dt_bias.data_ptr<float>(), w.A_log.data_ptr<float>(), w.D.data_ptr<float>(),
                           ssm.data_ptr<float>(), w.gnorm_w.data_ptr<float>(), g.data(), B, Di, N, H, K,
                           (float)kGatedNormEps);
  gemv(g.data(), B, Di, w.out_w.data_ptr<float>(), nullptr, Dm, y.data());
  auto out = at::empty({B, Dm}, r.options());
  float* po = out.data_ptr<float>();
  for (int64_t i = 0; i < B * Dm; ++i) po[i] = pr[i] + y[i];
  return out;
}

}  // namespace dynarch

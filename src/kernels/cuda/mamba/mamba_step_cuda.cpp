#include "kernels/cuda/mamba/mamba_step_cuda.h"

#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/mamba/mamba_step_launch.h"

namespace dynarch::cuda {
namespace {

template <class P>
P* step_ptr(const at::Tensor& t) {
  return reinterpret_cast<P*>(t.data_ptr());
}

}  // namespace

at::Tensor mamba_step_core(const at::Tensor& zx_in, at::Tensor& conv, at::Tensor& ssm, const at::Tensor& conv_w,
                           const at::Tensor& conv_b, const at::Tensor& dt_bias, const at::Tensor& A_log,
                           const at::Tensor& D, const at::Tensor& norm_w, int64_t d_inner, int64_t d_state,
                           double eps) {
  const char* op = "mamba_step_core";
  const auto dev = ssm.defined() && ssm.is_cuda() ? ssm.device() : zx_in.device();
  check_tensor(op, "ssm", ssm, dev, {at::kFloat, at::kDouble});
  check_tensor(op, "zx", zx_in, dev, {at::kFloat, at::kBFloat16, at::kDouble});
  check_tensor(op, "dt_bias", dt_bias, dev, {at::kFloat, at::kBFloat16, at::kDouble});
  const int64_t B = zx_in.dim() >= 1 ? zx_in.size(0) : 0, Di = d_inner, N = d_state, H = dt_bias.numel();
  check(H >= 1 && Di >= 1 && N >= 1 && Di % H == 0,
        std::string(op) + ": d_inner " + std::to_string(Di) + " must be a positive multiple of the " +
            std::to_string(H) + " heads (dt_bias), d_state positive");
  const int64_t P = Di / H, Cd = Di + 2 * N;
  check_shape(op, "zx", zx_in, {B, 2 * Di + 2 * N + H});
  check_shape(op, "ssm", ssm, {B, H, P, N});
  check(ssm.is_contiguous(), std::string(op) + ": ssm cache must be contiguous");
  check_tensor(op, "conv", conv, dev, {at::kFloat, at::kBFloat16, at::kDouble});
  check(conv.dim() == 3 && conv.size(0) == B && conv.size(1) == Cd && conv.size(2) >= 1,
        std::string(op) + ": conv must have shape [" + std::to_string(B) + ", " + std::to_string(Cd) + ", K], got " +
            c10::str(conv.sizes()));
  const int64_t K = conv.size(2);
  const std::pair<const char*, const at::Tensor*> params[] = {{"conv_w", &conv_w}, {"conv_b", &conv_b},
                                                              {"A_log", &A_log},   {"D", &D},
                                                              {"norm_w", &norm_w}};
  for (const auto& [name, t] : params) check_tensor(op, name, *t, dev, {at::kFloat, at::kBFloat16, at::kDouble});
  check_shape(op, "conv_w", conv_w, {Cd, 1, K});
  check_shape(op, "conv_b", conv_b, {Cd});
  check_shape(op, "dt_bias", dt_bias, {H});
  check_shape(op, "A_log", A_log, {H});
  check_shape(op, "D", D, {H});
  check_shape(op, "norm_w", norm_w, {Di});

  c10::cuda::CUDAGuard guard(dev);
  at::NoGradGuard no_grad;
  const auto ct = ssm.scalar_type();
  if (conv.scalar_type() != ct || !conv.is_contiguous()) conv = conv.to(ct).contiguous();
  // zx as read: the cache's type, or bf16 under an fp32 cache; unit column stride.
  at::Tensor zx = zx_in;
  if (zx.scalar_type() != ct && !(ct == at::kFloat && zx.scalar_type() == at::kBFloat16)) zx = zx.to(ct);
  if (zx.stride(1) != 1) zx = zx.contiguous();
  auto as_ct = [&](const at::Tensor& t) { return t.to(ct).contiguous(); };  // no copy when already so
  auto w = as_ct(conv_w).view({Cd, K}), b = as_ct(conv_b), dtb = as_ct(dt_bias), al = as_ct(A_log), d = as_ct(D),
       nw = as_ct(norm_w);
  auto xc = at::empty({B, Cd}, ssm.options()), y = at::empty({B, Di}, ssm.options());
  auto g = at::empty({B, Di}, ssm.options());
  const StepShape s{B, Di, N, H, K, zx.stride(0)};
  auto run = [&](auto* T0, auto* C0) {
    using T = std::remove_pointer_t<decltype(T0)>;
    using C = std::remove_pointer_t<decltype(C0)>;
    check_launch(mamba_step_forward<T, C>(step_ptr<const T>(zx), step_ptr<C>(conv), step_ptr<C>(ssm),
                                          step_ptr<const C>(w), step_ptr<const C>(b), step_ptr<const C>(dtb),
                                          step_ptr<const C>(al), step_ptr<const C>(d), step_ptr<const C>(nw), C(eps),
                                          step_ptr<C>(xc), step_ptr<C>(y), step_ptr<C>(g), s, stream()),
                 op);
  };
  if (ct == at::kDouble)
    run((double*)nullptr, (double*)nullptr);
  else if (zx.scalar_type() == at::kBFloat16)
    run((__nv_bfloat16*)nullptr, (float*)nullptr);
  else
    run((float*)nullptr, (float*)nullptr);
  return g;
}

}  // namespace dynarch::cuda

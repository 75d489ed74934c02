// The CUDA Mamba-2 decode step (src/kernels/cuda/mamba/mamba_step.cu, binding
// cuda::mamba_step_core, hook in mamba_step_core): against the CPU kernel over
// 16 steps (fp32 <= 1e-4 relative, also bf16 zx, fp64), Mamba2::step on CUDA
// against the full forward on CUDA position by position, the hook giving the
// binding's result, bad input. Skipped when no GPU is visible (always in the
// CPU build); the emulated run of the same kernels is test_cuda_emulated_step.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda_test_util.h"

#include <optional>

#include "core/forward_context.h"
#include "expect_error.h"
#include "kernels/cpu/mamba/mamba_step.h"
#include "model/layers/mamba2.h"

#if DYNARCH_CUDA
#include "kernels/cuda/mamba/mamba_step_cuda.h"
#endif

using namespace dynarch;
using dynarch::testutil::rel;
using testutil::expect_error;

namespace {

// A Mamba-2 layer with non-trivial D, norm weight and dt_bias (one softplus input above 20).
Mamba2 step_layer(int64_t d_model, int64_t N, int64_t K, int64_t P) {
  Mamba2 m(d_model, N, K, 2, P, 16);
  torch::NoGradGuard ng;
  m.D.copy_(torch::randn_like(m.D));
  m.norm->weight.copy_(torch::rand_like(m.norm->weight) + 0.5);
  m.dt_bias.copy_(torch::randn_like(m.dt_bias));
  m.dt_bias[0] = 21.0;
  return m;
}

at::Tensor core(Mamba2& m, const at::Tensor& zx, LayerCache& c) {
  auto on = [&](const at::Tensor& t) { return t.to(zx.device()); };
  return mamba_step_core(zx, c.conv, c.ssm, on(m.conv1d->weight), on(m.conv1d->bias), on(m.dt_bias), on(m.A_log),
                         on(m.D), on(m.norm->weight), m.d_inner, m.d_state);
}

LayerCache to_device(const LayerCache& c, const c10::Device& d) {
  LayerCache o;
  o.conv = c.conv.to(d).clone();
  o.ssm = c.ssm.to(d).clone();
  return o;
}

}  // namespace

// 16 steps of the core from random caches, CUDA vs CPU: g and both caches.
TEST(CudaStep, CoreMatchesCpu) {
  REQUIRE_CUDA();
  torch::NoGradGuard ng;
  struct Case {
    int64_t B, d_model, N, K, P;
    at::ScalarType ct, zt;
    double tol;
  };
  for (const Case& k : {Case{1, 64, 48, 4, 32, at::kFloat, at::kFloat, 1e-4}, Case{3, 64, 48, 4, 32, at::kFloat, at::kFloat, 1e-4},
                        Case{3, 20, 37, 2, 10, at::kFloat, at::kFloat, 1e-4},
                        Case{2, 64, 128, 4, 64, at::kFloat, at::kBFloat16, 1e-4},
                        Case{3, 20, 37, 3, 10, at::kDouble, at::kDouble, 1e-10}}) {
    torch::manual_seed(5 + k.B + k.N);
    Mamba2 m = step_layer(k.d_model, k.N, k.K, k.P);
    m.to(k.ct);
    LayerCache cpu = m.new_cache(k.B, k.ct);
    cpu.conv.copy_(torch::randn_like(cpu.conv));
    cpu.ssm.copy_(torch::randn_like(cpu.ssm));
    LayerCache dev = to_device(cpu, at::kCUDA);
    const std::string what = "B " + std::to_string(k.B) + " N " + std::to_string(k.N) + " " + c10::toString(k.zt);
    double worst = 0;
    for (int t = 0; t < 16; ++t) {
      auto zx = torch::randn({k.B, 2 * m.d_inner + 2 * m.d_state + m.nheads}, k.ct).to(k.zt);
      auto gc = core(m, zx, cpu), gd = core(m, zx.to(at::kCUDA), dev);
      ASSERT_TRUE(gd.is_cuda());
      ASSERT_EQ(gd.scalar_type(), k.ct);
      for (double e : {rel(gd, gc), rel(dev.conv, cpu.conv), rel(dev.ssm, cpu.ssm)}) {
        EXPECT_LT(e, k.tol) << what << " step " << t;
        worst = std::max(worst, e);
      }
    }
    std::printf("[ CUDA step core %s: max rel err %.3g ]\n", what.c_str(), worst);
  }
}

// Mamba2::step on CUDA (fast mode: in_proj, the CUDA core, out_proj) equals
// the full forward on CUDA at every position, and is exactly that composition.
TEST(CudaStep, LayerStepEqualsForward) {
  REQUIRE_CUDA();
  torch::NoGradGuard ng;
  torch::manual_seed(9);
  Mamba2 m = step_layer(32, 24, 4, 16);
  m.to(at::kCUDA);
  const int64_t B = 2, L = 12;
  auto u = torch::randn({B, L, 32}, at::TensorOptions().device(at::kCUDA));
  auto full = m.forward(u, nullptr, 0);
  for (bool reference : {false, true}) {
    std::optional<ReferenceKernelsScope> ref;
    if (reference) ref.emplace();
    LayerCache c = m.new_cache(B, at::kFloat);
    double worst = 0;
    for (int64_t t = 0; t < L; ++t) {
      auto ut = u.select(1, t);
      LayerCache manual = to_device(c, c.ssm.device());
      auto y = m.step(ut, c, {});
      if (!reference) {  // the fused path, exactly
        auto y2 = at::linear(core(m, at::linear(ut, m.in_proj->weight), manual), m.out_proj->weight);
        EXPECT_TRUE(torch::equal(y, y2)) << "t " << t;
        EXPECT_TRUE(torch::equal(c.ssm, manual.ssm)) << "t " << t;
        EXPECT_TRUE(torch::equal(c.conv, manual.conv)) << "t " << t;
      }
      worst = std::max(worst, rel(y, full.select(1, t)));
    }
    EXPECT_LT(worst, 1e-4) << (reference ? "reference" : "fast");
    std::printf("[ Mamba2 step on CUDA (%s) vs forward: max rel err %.3g ]\n", reference ? "reference" : "fast", worst);
  }
}

TEST(CudaStep, HookEqualsBindingAndErrors) {
  REQUIRE_CUDA();
#if DYNARCH_CUDA
  torch::NoGradGuard ng;
  torch::manual_seed(10);
  Mamba2 m = step_layer(20, 9, 4, 10);
  m.to(at::kCUDA);
  const int64_t B = 2, W = 2 * m.d_inner + 2 * m.d_state + m.nheads;
  LayerCache a = m.new_cache(B, at::kFloat);
  a.conv.copy_(torch::randn_like(a.conv));
  a.ssm.copy_(torch::randn_like(a.ssm));
  LayerCache b = to_device(a, at::kCUDA);
  auto zx = torch::randn({B, W}, at::TensorOptions().device(at::kCUDA));
  auto ga = core(m, zx, a);
  auto gb = cuda::mamba_step_core(zx, b.conv, b.ssm, m.conv1d->weight, m.conv1d->bias, m.dt_bias, m.A_log, m.D,
                                  m.norm->weight, m.d_inner, m.d_state, kGatedNormEps);
  EXPECT_TRUE(torch::equal(ga, gb));
  EXPECT_TRUE(torch::equal(a.conv, b.conv));
  EXPECT_TRUE(torch::equal(a.ssm, b.ssm));
  // A bf16 conv cache is replaced by an fp32 one, as on the CPU.
  LayerCache h = to_device(a, at::kCUDA);
  h.conv = h.conv.to(at::kBFloat16);
  core(m, zx, h);
  EXPECT_EQ(h.conv.scalar_type(), at::kFloat);

  auto call = [&](const at::Tensor& z, at::Tensor conv, at::Tensor ssm, const at::Tensor& nw, int64_t Di = -1) {
    mamba_step_core(z, conv, ssm, m.conv1d->weight, m.conv1d->bias, m.dt_bias, m.A_log, m.D, nw,
                    Di < 0 ? m.d_inner : Di, m.d_state);
  };
  expect_error([&] { call(zx, a.conv, a.ssm.cpu(), m.norm->weight); }, "mamba_step_core: ssm is on cpu");
  expect_error([&] { call(zx, a.conv.cpu(), a.ssm, m.norm->weight); }, "mamba_step_core: conv is on cpu");
  expect_error([&] { call(zx, a.conv, a.ssm.to(at::kHalf), m.norm->weight); }, "mamba_step_core: ssm must be Float");
  expect_error([&] { call(zx.narrow(1, 0, W - 1), a.conv, a.ssm, m.norm->weight); },
               "mamba_step_core: zx must have shape");
  expect_error([&] { call(zx, a.conv, a.ssm.narrow(3, 0, 3), m.norm->weight); }, "mamba_step_core: ssm must have shape");
  expect_error([&] { call(zx, a.conv.narrow(1, 0, 5), a.ssm, m.norm->weight); }, "mamba_step_core: conv must have shape");
  expect_error([&] { call(zx, a.conv, a.ssm, m.norm->weight.narrow(0, 0, 4)); },
               "mamba_step_core: norm_w must have shape");
  expect_error([&] { call(zx, a.conv, a.ssm, m.norm->weight, m.d_inner + 1); }, "positive multiple");
#endif
}

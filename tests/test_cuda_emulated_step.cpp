// The CUDA Mamba-2 decode step (src/kernels/cuda/mamba/mamba_step.cu), compiled
// by g++ with DYNARCH_CUDA_EMULATE and run on the host as in
// test_cuda_emulated.cpp: fp64, 9 consecutive steps from random caches, the
// layer output (in_proj, the launcher, out_proj) and both caches against
// Mamba2::step_reference and the CPU mamba_step_core. Built when the CUDA
// headers exist and the build is not the CUDA one.
#if DYNARCH_CUDA_EMULATED_TESTS
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "kernels/cpu/mamba/mamba_step.h"
#include "model/layers/mamba2.h"

#define DYNARCH_CUDA_EMULATE 1
#include "kernels/cuda/mamba/mamba_step.cu"
#include "cuda_emulate_end.h"

using namespace dynarch;

namespace {

double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

double* dp(const at::Tensor& t) { return t.data_ptr<double>(); }

// in_proj, the emulated launcher on the caches in place, out_proj.
at::Tensor emu_step(Mamba2& m, const at::Tensor& u, LayerCache& c) {
  auto zx = m.in_proj->forward(u).contiguous();
  const int64_t B = u.size(0), Di = m.d_inner, N = m.d_state, H = m.nheads, K = m.d_conv;
  auto o = zx.options();
  auto xc = torch::empty({B, Di + 2 * N}, o), y = torch::empty({B, Di}, o), g = torch::empty({B, Di}, o);
  auto w = m.conv1d->weight.contiguous();
  const cuda::StepShape s{B, Di, N, H, K, zx.stride(0)};
  const cudaError_t e = cuda::mamba_step_forward<double, double>(
      dp(zx), dp(c.conv), dp(c.ssm), dp(w), dp(m.conv1d->bias), dp(m.dt_bias), dp(m.A_log), dp(m.D),
      dp(m.norm->weight), kGatedNormEps, dp(xc), dp(y), dp(g), s, nullptr);
  EXPECT_EQ(e, cudaSuccess);
  return m.out_proj->forward(g);
}

struct StepCase {
  int64_t B, d_model, N, K, expand, P;
};

void run_case(const StepCase& k) {
  torch::manual_seed(7 + k.B * 13 + k.N);
  Mamba2 m(k.d_model, k.N, k.K, k.expand, k.P, 8);
  m.to(at::kDouble);
  torch::NoGradGuard ng;
  m.D.copy_(torch::randn_like(m.D));
  m.norm->weight.copy_(torch::rand_like(m.norm->weight) + 0.5);
  m.dt_bias.copy_(torch::randn_like(m.dt_bias));  // some softplus inputs above 20 below
  m.dt_bias[0] = 25.0;
  ASSERT_GE(m.nheads, 2);
  LayerCache emu = m.new_cache(k.B, at::kDouble), ref = m.new_cache(k.B, at::kDouble),
             cpu = m.new_cache(k.B, at::kDouble);
  emu.conv.copy_(torch::randn_like(emu.conv));
  emu.ssm.copy_(torch::randn_like(emu.ssm));
  for (LayerCache* c : {&ref, &cpu}) c->conv.copy_(emu.conv), c->ssm.copy_(emu.ssm);
  const std::string what = "B " + std::to_string(k.B) + " N " + std::to_string(k.N) + " K " + std::to_string(k.K) +
                           " P " + std::to_string(k.P) + " H " + std::to_string(m.nheads);
  double worst = 0;
  for (int t = 0; t < 9; ++t) {
    auto u = torch::randn({k.B, k.d_model}, at::kDouble);
    auto a = emu_step(m, u, emu);
    auto r = m.step_reference(u, ref);
    auto zx = m.in_proj->forward(u);
    auto gc = mamba_step_core(zx, cpu.conv, cpu.ssm, m.conv1d->weight, m.conv1d->bias, m.dt_bias, m.A_log, m.D,
                              m.norm->weight, m.d_inner, m.d_state);
    const double d[] = {maxdiff(a, r), maxdiff(emu.conv, ref.conv), maxdiff(emu.ssm, ref.ssm),
                        maxdiff(a, m.out_proj->forward(gc)), maxdiff(emu.ssm, cpu.ssm)};
    for (double v : d) {
      EXPECT_LE(v, 1e-12) << what << " step " << t;
      worst = std::max(worst, v);
    }
  }
  std::printf("[ emulated step %s: max |diff| %.3g ]\n", what.c_str(), worst);
}

}  // namespace

TEST(CudaEmulatedStep, MatchesReferenceFp64) {
  // P and N not multiples of 32 (one N above 32); K = 4 and 2; H >= 2.
  for (const StepCase& k : {StepCase{1, 12, 5, 4, 2, 6}, StepCase{3, 12, 5, 4, 2, 6}, StepCase{1, 15, 37, 2, 2, 10},
                            StepCase{3, 15, 7, 2, 2, 10}, StepCase{3, 35, 40, 4, 2, 35}})
    run_case(k);
}

#endif  // DYNARCH_CUDA_EMULATED_TESTS

// Decode-step kernels (kernels/cpu/dense/linear_rows.h, attention_step.h, mamba/mamba_step.h) against the op-by-op forms.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <optional>

#include "core/forward_context.h"
#include "kernels/cpu/dense/attention_step.h"
#include "kernels/cpu/dense/linear_rows.h"
#include "kernels/cpu/mamba/mamba_step.h"
#include "kernels/cpu/dense/norm_act.h"
#include "model/layers/attention.h"
#include "model/layers/mamba2.h"

using namespace dynarch;

namespace {

// One decode step of a mixer in KernelMode::reference (its op-by-op form).
at::Tensor ref_step(Mixer& m, const at::Tensor& x, LayerCache& c, const std::vector<int64_t>& pos) {
  ReferenceKernelsScope reference;
  return m.step(x, c, pos);
}
double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}
}  // namespace

TEST(FusedDecode, LinearRowsEqualsLinear) {
  torch::manual_seed(31);
  for (auto dt : {torch::kFloat, torch::kDouble})
    // out = 10 is not a multiple of the 4-row blocks; in = 37 and 77 not of the
    // vector widths (77 = 2 x 32 + 8 + 5 takes every loop of the fp32 row kernel).
    for (int64_t in : {37, 77, 300}) {
      auto W = torch::randn({10, in}, dt), b = torch::randn({10}, dt);
      for (auto shape : std::vector<std::vector<int64_t>>{{1, in}, {2, in}, {5, in}, {2, 3, in}, {16, in}})
        for (int variant = 0; variant < 4; ++variant) {  // row or block kernel, with or without prefetches
          auto x = torch::randn(shape, dt);
          torch::NoGradGuard ng;
          std::optional<StreamWeightsScope> stream;
          std::optional<BlockGemvScope> block;
          if (variant & 1) stream.emplace();
          if (variant & 2) block.emplace();
          const double tol = dt == torch::kFloat ? 2.5e-7 * in : 1e-12;  // summation order differs
          EXPECT_LT(maxdiff(linear_rows(x, W), at::linear(x, W)), tol) << in << " " << shape[0] << " " << variant;
          EXPECT_LT(maxdiff(linear_rows(x, W, b), at::linear(x, W, b)), tol) << in << " " << shape[0] << " " << variant;
          EXPECT_EQ(linear_rows(x, W).sizes(), at::linear(x, W).sizes());
        }
    }
  // With autograd on it is at::linear (differentiable).
  auto W = torch::randn({4, 8}).requires_grad_(true);
  auto y = linear_rows(torch::randn({1, 8}), W);
  EXPECT_TRUE(y.requires_grad());
}

TEST(FusedDecode, AttentionStepEqualsReference) {
  // Rows at different positions (masking by position) with and without a window.
  torch::manual_seed(32);
  for (int64_t window : {-1, 3}) {
    Attention a(24, 3, 4, window), r(24, 3, 4, window);
    r.to(torch::kDouble);
    a.to(torch::kDouble);
    {
      torch::NoGradGuard ng;
      r.Wqkv->weight.copy_(a.Wqkv->weight);
      r.out_proj->weight.copy_(a.out_proj->weight);
    }
    torch::NoGradGuard ng;
    const int64_t B = 3;
    auto ca = a.new_cache(B, at::kDouble), cr = r.new_cache(B, at::kDouble);
    std::vector<int64_t> pos{0, 4, 9};
    for (int t = 0; t < 12; ++t) {
      auto x = torch::randn({B, 24}, torch::kDouble);
      EXPECT_LT(maxdiff(a.step(x, ca, pos), ref_step(r, x, cr, pos)), 1e-6) << "window " << window << " t " << t;
      for (auto& p : pos) p += 1;
    }
    EXPECT_LT(maxdiff(ca.k, cr.k), 1e-12);
  }
}

TEST(FusedDecode, MambaStepEqualsReferenceFp64) {
  torch::manual_seed(33);
  Mamba2 m(32, 8, 4, 2, 8, 4), r(32, 8, 4, 2, 8, 4);
  m.to(torch::kDouble);
  r.to(torch::kDouble);
  {
    torch::NoGradGuard ng;
    auto src = m.named_parameters();
    for (auto& kv : r.named_parameters()) kv.value().copy_(src[kv.key()]);
    m.conv1d->bias.normal_();
    r.conv1d->bias.copy_(m.conv1d->bias);
  }
  torch::NoGradGuard ng;
  for (int64_t B : {1, 2, 5}) {  // batch 1 splits the SSM update over heads
    auto cm = m.new_cache(B, at::kDouble), cr = r.new_cache(B, at::kDouble);
    for (int t = 0; t < 7; ++t) {
      auto x = torch::randn({B, 32}, torch::kDouble);
      EXPECT_LT(maxdiff(m.step(x, cm, {}), ref_step(r, x, cr, {})), 1e-12) << "B " << B << " t " << t;
    }
    EXPECT_LT(maxdiff(cm.ssm, cr.ssm), 1e-12);
    EXPECT_LT(maxdiff(cm.conv, cr.conv), 1e-12);
  }
}

TEST(FusedDecode, MambaBlockStepEqualsOps) {
  // r + step(rmsnorm(r)) in one call (mamba_block_step) against the ops, over
  // several steps so that the conv / SSM caches carry; fp32, batch 1 and 2.
  torch::manual_seed(35);
  Mamba2 m(40, 8, 4, 2, 8, 4);  // d_model 40: not a multiple of the vector width
  auto norm_w = torch::rand({40}) + 0.5;
  torch::NoGradGuard ng;
  m.conv1d->bias.normal_();
  m.D.normal_();
  for (int64_t B : {1, 2}) {
    auto cf = m.new_cache(B, at::kFloat), co = m.new_cache(B, at::kFloat);
    for (int t = 0; t < 6; ++t) {
      auto r = torch::randn({B, 40});
      auto fused = m.fused_residual_step(r, norm_w, 1e-5, cf, {});
      ASSERT_TRUE(fused.defined()) << "B " << B;
      auto ops = r + m.step(rms_norm_fused(r, norm_w, 1e-5), co, {});
      EXPECT_LT(maxdiff(fused, ops), 1e-5) << "B " << B << " t " << t;
      EXPECT_GT(maxdiff(fused, r), 1e-3);  // the branch contributes
    }
    EXPECT_LT(maxdiff(cf.ssm, co.ssm), 1e-5);
    EXPECT_LT(maxdiff(cf.conv, co.conv), 1e-6);
  }
  // Where it does not apply it declines (undefined), and the caller runs the ops.
  auto c3 = m.new_cache(3, at::kFloat);
  EXPECT_FALSE(m.fused_residual_step(torch::randn({3, 40}), norm_w, 1e-5, c3, {}).defined());  // 3 rows
  auto c1 = m.new_cache(1, at::kFloat);
  {
    UnfusedStepScope unfused;
    EXPECT_FALSE(m.fused_residual_step(torch::randn({1, 40}), norm_w, 1e-5, c1, {}).defined());
  }
  {
    Bf16WeightsScope bf16;
    EXPECT_FALSE(m.fused_residual_step(torch::randn({1, 40}), norm_w, 1e-5, c1, {}).defined());
  }
  auto c1d = m.new_cache(1, at::kDouble);
  EXPECT_FALSE(m.fused_residual_step(torch::randn({1, 40}, torch::kDouble), norm_w, 1e-5, c1d, {}).defined());
}

TEST(FusedDecode, Bf16WeightsScopeRoundsWeightsOnly) {
  torch::manual_seed(34);
  auto W = torch::randn({9, 40}), x = torch::randn({2, 40}), b = torch::randn({9});
  torch::NoGradGuard ng;
  auto want = at::linear(x, W.to(at::kBFloat16).to(at::kFloat), b);  // fp32 arithmetic on rounded weights
  {
    Bf16WeightsScope bf16;
    EXPECT_LT(maxdiff(linear_rows(x, W, b), want), 1e-5);
    W.mul_(2.0);  // an in-place update is seen (version counter)
    EXPECT_LT(maxdiff(linear_rows(x, W, b), at::linear(x, W.to(at::kBFloat16).to(at::kFloat), b)), 1e-5);
  }
  EXPECT_LT(maxdiff(linear_rows(x, W, b), at::linear(x, W, b)), 1e-5);  // scope ended: fp32 weights
}

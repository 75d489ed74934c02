// Layer-level tests: known values from the spec and fast-vs-reference paths.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/forward_context.h"
#include "core/compat.h"
#include "model/layers/attention.h"
#include "model/stack/isotropic.h"
#include "model/layers/mamba2.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"
#include "expect_error.h"

using namespace dynarch;
using dynarch::testutil::expect_error;

static double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(RMSNorm, KnownValues) {
  auto x = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble);
  auto w = torch::tensor({1.0, 1.0, 2.0, 0.5}, torch::kDouble);
  auto y = rms_norm(x, w);
  double inv = 1.0 / std::sqrt(7.5 + 1e-5);
  EXPECT_NEAR(y[0].item<double>(), 1 * inv, 1e-12);
  EXPECT_NEAR(y[2].item<double>(), 6 * inv, 1e-12);
  EXPECT_NEAR(y[3].item<double>(), 2 * inv, 1e-12);
  // bf16 input still gets fp32 statistics and an fp32 result.
  EXPECT_EQ(rms_norm(x.to(at::kBFloat16), w.to(at::kFloat)).scalar_type(), at::kFloat);
}

TEST(RMSNorm, GatedNormSpecVector) {
  auto y = torch::tensor({1.0, 2.0}, torch::kDouble), z = torch::tensor({0.0, 1.0}, torch::kDouble);
  auto w = torch::tensor({1.0, 0.5}, torch::kDouble);
  auto g = gated_rms_norm(y, z, w);
  EXPECT_NEAR(g[0].item<double>(), 0.0, 1e-9);
  EXPECT_NEAR(g[1].item<double>(), 0.707103, 1e-6);
}

TEST(SwiGLU, ValueFirstGateSecond) {
  SwiGLU m(2, 2);
  torch::NoGradGuard ng;
  // fc1 rows 0-1 = value (identity), rows 2-3 = gate (constant 1 from x0).
  m.fc1->weight.copy_(torch::tensor({{1.0, 0.0}, {0.0, 1.0}, {1.0, 0.0}, {1.0, 0.0}}));
  m.fc2->weight.copy_(torch::eye(2));
  auto x = torch::tensor({{2.0, 3.0}});
  auto y = m.forward(x);
  double s = 2.0 / (1.0 + std::exp(-2.0));  // silu(2)
  EXPECT_NEAR(y[0][0].item<double>(), 2.0 * s, 1e-5);
  EXPECT_NEAR(y[0][1].item<double>(), 3.0 * s, 1e-5);
}

TEST(Rotary, SpecVectors) {
  auto v = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble).view({1, 1, 4});  // (L,H,hd)
  auto y = apply_rotary(v, torch::tensor({1L}), 4).flatten();
  std::vector<double> want{-1.984111, 1.959901, 2.462378, 4.019800};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i].item<double>(), want[i], 1e-6);
  auto v6 = torch::arange(1, 7, torch::kDouble).view({1, 1, 6});
  auto y6 = apply_rotary(v6, torch::tensor({3L}), 4).flatten();
  std::vector<double> want6{-1.413353, 1.879118, -2.828857, 4.058191, 5, 6};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(y6[i].item<double>(), want6[i], 1e-6);
}

// The per-device table of fp64 angles gives what the angles computed directly
// give: small and large positions (the table grows past 256 on the second call),
// positions given with a bound, fp32 and fp64; positions past the bound of
// device positions are refused only where they can be read (host positions).
TEST(Rotary, TableEqualsDirectAngles) {
  const int64_t r = 6, half = r / 2;
  auto direct = [&](const at::Tensor& x, const at::Tensor& pos) {
    auto inv = at::pow(10000.0, -at::arange(0, half, at::kDouble) * 2.0 / (double)r);
    auto ang = pos.to(at::kDouble).unsqueeze(-1) * inv.unsqueeze(0);
    auto c = ang.cos().to(x.scalar_type()).unsqueeze(-2), sn = ang.sin().to(x.scalar_type()).unsqueeze(-2);
    auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
    return at::cat({x1 * c - x2 * sn, x2 * c + x1 * sn, x.narrow(-1, r, x.size(-1) - r)}, -1);
  };
  torch::manual_seed(3);
  for (auto dt : {at::kDouble, at::kFloat}) {
    auto x = torch::randn({2, 5, 3, 8}, dt);
    for (auto pos : {torch::tensor({0L, 1L, 2L, 3L, 4L}), torch::tensor({7L, 300L, 4095L, 70000L, 123457L})}) {
      auto want = direct(x, pos);
      EXPECT_LE((apply_rotary(x, pos, r) - want).abs().max().item<double>(), dt == at::kDouble ? 1e-12 : 1e-6);
      const int64_t bound = pos.max().item<int64_t>() + 1;
      EXPECT_TRUE(apply_rotary(x, pos, r, 10000.0, bound).equal(apply_rotary(x, pos, r)));
    }
  }
  expect_error([] { apply_rotary(torch::zeros({1, 1, 8}), torch::tensor({0L}).to(at::kMeta), 6); }, "need a bound");
}

TEST(Attention, FastPathEqualsReference) {
  torch::manual_seed(1);
  auto q = torch::randn({2, 3, 17, 8}), k = torch::randn({2, 3, 17, 8}), v = torch::randn({2, 3, 17, 8});
  auto ref = attention_reference(q, k, v, 0, -1);
  auto fast = compat::sdpa_causal(q, k, v);
  EXPECT_LT(maxdiff(ref, fast), 1e-5);
  // Window 0: each query sees only itself -> output equals v.
  EXPECT_LT(maxdiff(attention_reference(q, k, v, 0, 0), v), 1e-6);
}

class StepVsForward : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(StepVsForward, StackStepEqualsFullForward) {
  auto [layout, window] = GetParam();
  torch::manual_seed(3);
  SsmConfig ssm;
  ssm.d_state = 8;
  ssm.headdim = 8;
  ssm.chunk_size = 5;
  StackOptions o{32, 128, ssm, 4, 4, window};
  Isotropic stack(parse_layout_string(layout, "test"), o);
  for (auto& p : stack.parameters()) {  // make layers matter beyond their init
    torch::NoGradGuard ng;
    if (p.dim() == 1) p.add_(torch::randn_like(p) * 0.1);
  }
  const int64_t B = 2, L = 13;
  auto x = torch::randn({B, L, 32});
  auto full = stack.forward(x);
  // token-by-token
  auto st = stack.new_state(B, at::kFloat);
  for (int64_t t = 0; t < L; ++t) {
    auto y = stack.step(x.select(1, t), st);
    EXPECT_LT(maxdiff(y, full.select(1, t)), 1e-5) << layout << " t=" << t;
  }
  // prefill 6, then continue with a second chunk of 4, then step the rest
  auto st2 = stack.new_state(B, at::kFloat);
  auto a = stack.forward(x.narrow(1, 0, 6), &st2);
  auto b = stack.forward(x.narrow(1, 6, 4), &st2);
  EXPECT_LT(maxdiff(a, full.narrow(1, 0, 6)), 1e-5);
  EXPECT_LT(maxdiff(b, full.narrow(1, 6, 4)), 1e-5);
  for (int64_t t = 10; t < L; ++t) EXPECT_LT(maxdiff(stack.step(x.select(1, t), st2), full.select(1, t)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Layouts, StepVsForward,
                         ::testing::Values(std::make_tuple("t2", -1), std::make_tuple("t2", 3),
                                           std::make_tuple("m2", -1), std::make_tuple("T1M1m1t1", -1),
                                           std::make_tuple("T1M1m1t1", 2)));

TEST(Mamba2, SsdSpecVector) {
  // H = P = N = 1, A_log = 0 (a = -1), dt_bias = 0.5, D = 0.5.
  auto dt = torch::softplus(torch::tensor({0.0, 1.0, -1.0}, torch::kDouble) + 0.5).view({1, 3, 1});
  auto x = torch::tensor({1.0, 2.0, 3.0}, torch::kDouble).view({1, 3, 1, 1});
  auto Bm = torch::tensor({1.0, 0.5, 2.0}, torch::kDouble).view({1, 3, 1});
  auto Cm = torch::tensor({1.0, 1.0, 0.5}, torch::kDouble).view({1, 3, 1});
  auto a = torch::tensor({-1.0}, torch::kDouble);
  std::vector<double> want_dt{0.974077, 1.701413, 0.474077}, want_y{1.474077, 2.879110, 3.507066};
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(dt.flatten()[t].item<double>(), want_dt[t], 1e-6);
  for (auto chunked : {false, true}) {
    auto r = chunked ? ssd_chunked(x, dt, a, Bm, Cm, 2) : ssd_sequential(x, dt, a, Bm, Cm);
    auto y = (r.y + 0.5 * x).flatten();
    for (int t = 0; t < 3; ++t) EXPECT_NEAR(y[t].item<double>(), want_y[t], 1e-6);
    EXPECT_NEAR(r.state.item<double>(), 4.014131, 1e-6);
  }
}

TEST(Mamba2, ChunkedEqualsSequentialFp64) {
  torch::manual_seed(7);
  auto opt = torch::kDouble;
  for (int64_t L : {1, 7, 16, 37}) {
    for (int64_t Q : {1, 4, 16, 64}) {
      const int64_t B = 2, H = 3, P = 4, N = 5;
      auto x = torch::randn({B, L, H, P}, opt), Bm = torch::randn({B, L, N}, opt), Cm = torch::randn({B, L, N}, opt);
      auto dt = torch::softplus(torch::randn({B, L, H}, opt));
      auto a = -torch::rand({H}, opt) * 4 - 0.5;
      auto init = torch::randn({B, H, P, N}, opt);
      auto s = ssd_sequential(x, dt, a, Bm, Cm, init), c = ssd_chunked(x, dt, a, Bm, Cm, Q, init);
      EXPECT_LT(maxdiff(s.y, c.y), 1e-10) << "L=" << L << " Q=" << Q;
      EXPECT_LT(maxdiff(s.state, c.state), 1e-10);
    }
  }
}

TEST(Mamba2, LayerChunkedEqualsSequentialAndGradients) {
  torch::manual_seed(11);
  Mamba2 m(16, 4, 4, 2, 8, 4);
  m.to(torch::kDouble);
  auto x = torch::randn({2, 11, 16}, torch::kDouble).requires_grad_(true);
  auto y1 = m.forward(x, nullptr, 0);
  auto g1 = torch::autograd::grad({y1.sum()}, {x, m.in_proj->weight});
  ReferenceKernelsScope reference;
  auto y2 = m.forward(x, nullptr, 0);
  auto g2 = torch::autograd::grad({y2.sum()}, {x, m.in_proj->weight});
  EXPECT_LT(maxdiff(y1, y2), 1e-10);
  EXPECT_LT(maxdiff(g1[0], g2[0]), 1e-9);
  EXPECT_LT(maxdiff(g1[1], g2[1]), 1e-9);
}

// forward_chunked (what forward runs off the CPU: causal_conv1d_silu and
// ssd_chunk_scan) equals the op-by-op reference, with ragged lengths, a cache
// carried from one call to the next, and gradients; chunk 4 < L, so the
// chunked scan crosses chunks (fp64).
TEST(Mamba2, DeviceOpsFormEqualsReference) {
  torch::manual_seed(21);
  Mamba2 m(16, 4, 4, 2, 8, 4);
  m.to(torch::kDouble);
  {
    torch::NoGradGuard ng;
    m.conv1d->bias.normal_();
  }
  const int64_t B = 3;
  auto x = torch::randn({B, 13, 16}, torch::kDouble).requires_grad_(true);
  auto lengths = torch::tensor({7, 4, 2}, torch::kLong);  // of the second call's 7 positions
  std::vector<at::Tensor> params{x, m.in_proj->weight, m.conv1d->weight, m.conv1d->bias, m.dt_bias, m.A_log, m.D};
  for (bool ragged : {false, true}) {
    auto len = ragged ? lengths : at::Tensor();
    auto c1 = m.new_cache(B, at::kDouble), c2 = m.new_cache(B, at::kDouble);
    // Two calls: 6 positions, then 7 continuing from the cache.
    auto y1 = at::cat({m.forward_chunked(x.narrow(1, 0, 6), &c1, 0), m.forward_chunked(x.narrow(1, 6, 7), &c1, 6, len)}, 1);
    auto y2 = at::cat({m.forward_reference(x.narrow(1, 0, 6), &c2, 0), m.forward_reference(x.narrow(1, 6, 7), &c2, 6, len)}, 1);
    EXPECT_LT(maxdiff(y1, y2), 1e-10) << ragged;
    EXPECT_LT(maxdiff(c1.ssm, c2.ssm), 1e-10);
    EXPECT_LT(maxdiff(c1.conv, c2.conv), 1e-12);
    auto w = torch::randn_like(y1);
    auto g1 = torch::autograd::grad({(y1 * w).sum()}, params), g2 = torch::autograd::grad({(y2 * w).sum()}, params);
    for (size_t i = 0; i < params.size(); ++i) EXPECT_LT(maxdiff(g1[i], g2[i]), 1e-9) << ragged << " param " << i;
  }
  // The op entry on the CPU is the chunked form.
  auto xs = torch::randn({2, 7, 3, 4}, torch::kDouble), dt = torch::softplus(torch::randn({2, 7, 3}, torch::kDouble));
  auto a = -torch::rand({3}, torch::kDouble) - 0.5;
  auto Bm = torch::randn({2, 7, 5}, torch::kDouble), Cm = torch::randn({2, 7, 5}, torch::kDouble);
  auto op = ssd_chunk_scan(xs, dt, a, Bm, Cm, 3), ref = ssd_sequential(xs, dt, a, Bm, Cm);
  EXPECT_LT(maxdiff(op.y, ref.y), 1e-10);
  EXPECT_LT(maxdiff(op.state, ref.state), 1e-10);
}

TEST(Mamba2, InitRanges) {
  torch::manual_seed(5);
  Mamba2 m(64, 16, 4, 2, 16, 8);
  auto dt = torch::softplus(m.dt_bias);
  EXPECT_GE(dt.min().item<double>(), 1e-4 * 0.999);
  EXPECT_LE(dt.max().item<double>(), 0.1 * 1.001);
  auto A = torch::exp(m.A_log);
  EXPECT_GE(A.min().item<double>(), 1.0 - 1e-6);
  EXPECT_LE(A.max().item<double>(), 16.0 + 1e-6);
  EXPECT_EQ(m.in_proj->weight.size(0), 2 * 128 + 2 * 16 + 8);  // [z | xBC | dt]
  EXPECT_EQ(m.conv1d->weight.size(0), 128 + 32);
}

TEST(Mamba2, FusedStepEqualsReferenceStep) {
  torch::manual_seed(12);
  Mamba2 m(32, 8, 4, 2, 8, 4);
  {
    torch::NoGradGuard ng;
    m.conv1d->bias.normal_();
  }
  torch::NoGradGuard ng;
  const int64_t B = 3;
  auto c1 = m.new_cache(B, at::kFloat), c2 = m.new_cache(B, at::kFloat);
  for (int t = 0; t < 9; ++t) {
    auto x = torch::randn({B, 32});
    auto a = m.step(x, c1, {}), b = m.step_reference(x, c2);
    EXPECT_LT(maxdiff(a, b), 1e-5) << t;
    EXPECT_LT(maxdiff(c1.ssm, c2.ssm), 1e-5);
    EXPECT_LT(maxdiff(c1.conv, c2.conv), 1e-6);
  }
}

// Decode rows at their own positions (batched H-Net decode: the inner network
// steps boundary rows only): the fused step and the tensor-op step (which the
// GPU runs: one indexed KV write, positions copied without a stall) agree at
// every step, with and without a window, caches included.
TEST(Attention, StepAtUnequalPositionsFastEqualsReference) {
  torch::manual_seed(17);
  for (int64_t window : {-1L, 3L}) {
    Attention a(32, 2, 8, window);
    torch::NoGradGuard ng;
    auto c1 = a.new_cache(3, at::kFloat), c2 = a.new_cache(3, at::kFloat);
    std::vector<int64_t> pos{0, 0, 0};
    for (int t = 0; t < 12; ++t) {
      auto x = torch::randn({3, 32});
      auto y1 = a.step(x, c1, pos);
      at::Tensor y2;
      {
        ReferenceKernelsScope ref;
        y2 = a.step(x, c2, pos);
      }
      EXPECT_LT(maxdiff(y1, y2), 1e-5) << "window " << window << " step " << t;
      for (int64_t b = 0; b < 3; ++b)
        EXPECT_LT(maxdiff(c1.k[b].narrow(1, 0, pos[b] + 1), c2.k[b].narrow(1, 0, pos[b] + 1)), 1e-6);
      pos[0] += 1, pos[1] += t % 2, pos[2] += t % 3 == 0;  // rows advance at different rates
    }
  }
}

TEST(Rotary, StepInplaceEqualsApplyRotary) {
  torch::manual_seed(13);
  auto qkv = torch::randn({3, 3, 2, 8});
  std::vector<int64_t> pos{0, 5, 1000};
  auto want_q = apply_rotary(qkv.select(1, 0), torch::tensor(pos), 6);
  auto want_k = apply_rotary(qkv.select(1, 1), torch::tensor(pos), 6);
  auto v = qkv.select(1, 2).clone();
  rotary_step_inplace(qkv, pos, 6);
  EXPECT_LT(maxdiff(qkv.select(1, 0), want_q), 1e-5);
  EXPECT_LT(maxdiff(qkv.select(1, 1), want_k), 1e-5);
  EXPECT_TRUE(qkv.select(1, 2).equal(v));
}

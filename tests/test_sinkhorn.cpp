// Sinkhorn-Knopp op (mhc.md §4, §10): test vectors, properties, fused ==
// reference, fp64 gradcheck, bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/compat.h"
#include "core/error.h"
#include "expect_error.h"
#include "gradcheck.h"
#include "kernels/cpu/streams/sinkhorn.h"

using namespace dynarch;
using testutil::expect_error;

namespace {

at::Tensor mat(std::vector<double> v, int n) {
  return torch::tensor(v, torch::kDouble).view({1, n, n});
}

const std::vector<double> kZ = {0.5, -1.0, 0.2, 1.5, 0.0, 0.3, -0.7, 0.9, 2.0, -0.5, 0.1, 0.0, -1.2, 0.4, 0.8, -0.3};
const std::vector<double> kR = {0.184666, 0.088206, 0.236938, 0.490190, 0.139830, 0.404055, 0.120262, 0.335853,
                                0.638194, 0.112142, 0.165321, 0.084343, 0.037310, 0.395597, 0.477479, 0.089614};
const std::vector<double> kGrad00 = {0.105870,  -0.015983, -0.037804, -0.052083, -0.033411, 0.002647,
                                     0.003392,  0.027373,  -0.063004, 0.016459,  0.027844,  0.018701,
                                     -0.009454, -0.003123, 0.006568,  0.006009};

SinkhornOptions opts(int iters, double eps, bool v4 = false) {
  SinkhornOptions o;
  o.iters = iters;
  o.eps = eps;
  o.eps_after_first = v4;
  return o;
}

double maxdiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Logits of the §10 table with their expected diagonal / off-diagonal values.
struct Case {
  at::Tensor Z;
  double diag, off;  // off < 0: not listed
};
std::vector<Case> table() {
  auto I = torch::eye(4, torch::kDouble).unsqueeze(0);
  return {{6 * I - 3, 0.992619, 0.002460},
          {torch::zeros({1, 4, 4}, torch::kDouble), 0.25, 0.25},
          {I, 0.475367, 0.174878},
          {(I - 1) * 8, 0.998995, -1}};
}

}  // namespace

TEST(Sinkhorn, TableVectors) {
  for (auto& c : table()) {
    for (bool ref : {false, true}) {
      auto R = ref ? sinkhorn_reference(c.Z, opts(20, 0)) : sinkhorn(c.Z, opts(20, 0));
      auto eye = torch::eye(4, torch::kBool).unsqueeze(0);
      EXPECT_LT((R.masked_select(eye) - c.diag).abs().max().item<double>(), 1e-6) << c.Z;
      if (c.off >= 0) {
        EXPECT_LT((R.masked_select(~eye) - c.off).abs().max().item<double>(), 1e-6) << c.Z;
      }
      // eps = 1e-6 moves the result by less than 1e-6
      auto Re = ref ? sinkhorn_reference(c.Z, opts(20, 1e-6)) : sinkhorn(c.Z, opts(20, 1e-6));
      EXPECT_LT(maxdiff(R, Re), 1e-6);
    }
  }
}

TEST(Sinkhorn, AsymmetricVector) {
  auto Z = mat(kZ, 4);
  for (bool ref : {false, true}) {
    auto R = ref ? sinkhorn_reference(Z, opts(20, 0)) : sinkhorn(Z, opts(20, 0));
    EXPECT_LT(maxdiff(R, mat(kR, 4)), 1e-6);
    EXPECT_LT((R.sum(2) - 1).abs().max().item<double>(), 1e-15);  // rows exact
    EXPECT_LT((R.sum(1) - 1).abs().max().item<double>(), 1e-11);  // columns close
    auto Re = ref ? sinkhorn_reference(Z, opts(20, 1e-6)) : sinkhorn(Z, opts(20, 1e-6));
    EXPECT_LT(maxdiff(R, Re), 1e-6);
    auto R1 = ref ? sinkhorn_reference(Z, opts(1, 0)) : sinkhorn(Z, opts(1, 0));
    auto row0 = torch::tensor({0.157266, 0.095072, 0.238586, 0.509076}, torch::kDouble);
    EXPECT_LT(maxdiff(R1[0][0], row0), 1e-6);
  }
}

TEST(Sinkhorn, GradientOfR00) {
  for (bool ref : {false, true}) {
    auto Z = mat(kZ, 4).requires_grad_(true);
    auto R = ref ? sinkhorn_reference(Z, opts(20, 0)) : sinkhorn(Z, opts(20, 0));
    auto g = torch::autograd::grad({R[0][0][0]}, {Z})[0];
    EXPECT_LT(maxdiff(g, mat(kGrad00, 4)), 1e-6) << g;
    EXPECT_LT(std::abs(g.sum().item<double>()), 1e-12);
  }
}

TEST(Sinkhorn, GradientSumsToZero) {
  torch::manual_seed(10);
  for (double eps : {0.0, 1e-6}) {
    auto Z = (torch::randn({9, 4, 4}, torch::kDouble) * 3).requires_grad_(true);
    auto R = sinkhorn(Z, opts(20, eps));
    auto g = torch::autograd::grad({(R * torch::randn_like(R)).sum()}, {Z})[0];
    EXPECT_LT(g.sum({1, 2}).abs().max().item<double>(), 1e-12) << "eps " << eps;
  }
}

TEST(Sinkhorn, RandomLogitsRowsSumToOne) {
  torch::manual_seed(11);
  for (double scale : {0.5, 1.0, 2.0, 4.0, 8.0}) {
    auto Z = torch::randn({1000, 4, 4}) * scale;
    for (bool ref : {false, true}) {
      auto R = ref ? sinkhorn_reference(Z, opts(20, 0)) : sinkhorn(Z, opts(20, 0));
      EXPECT_GE(R.min().item<double>(), 0.0);
      EXPECT_LT((R.sum(2) - 1).abs().max().item<double>(), 1e-6) << "scale " << scale;
      // With eps the last row step leaves r / (r + eps) = 1 - eps / r + ...:
      // rows fall short by about eps (1.0e-6 .. 1.3e-6 measured).
      auto Re = ref ? sinkhorn_reference(Z, opts(20, 1e-6)) : sinkhorn(Z, opts(20, 1e-6));
      EXPECT_GE(Re.min().item<double>(), 0.0);
      EXPECT_LT((Re.sum(2) - 1).abs().max().item<double>(), 2e-6) << "scale " << scale;
    }
  }
}

TEST(Sinkhorn, ColumnShiftInvariantRowShiftNot) {
  torch::manual_seed(12);
  for (auto dt : {torch::kFloat, torch::kDouble})
    for (double eps : {0.0, 1e-6}) {
      auto Z = torch::randn({5, 4, 4}, dt) * 2;
      auto shift = torch::tensor({0.0, 7.0, -5.0, 3.0}, dt).view({1, 1, 4});  // per source column
      const double tol = dt == torch::kFloat ? 1e-6 : 1e-13;
      EXPECT_LT(maxdiff(sinkhorn(Z, opts(20, eps)), sinkhorn(Z + shift, opts(20, eps))), tol);
      EXPECT_LT(maxdiff(sinkhorn_reference(Z, opts(20, eps)), sinkhorn_reference(Z + shift, opts(20, eps))), tol);
      // A per-row shift changes the finite-iteration result, which is why a
      // per-row max subtraction would be wrong.
      EXPECT_GT(maxdiff(sinkhorn(Z, opts(3, eps)), sinkhorn(Z + shift.transpose(1, 2), opts(3, eps))), 1e-3);
    }
}

TEST(Sinkhorn, OneStreamIsExactlyOne) {
  auto Z = torch::randn({6, 1, 1}).requires_grad_(true);
  for (double eps : {0.0, 1e-6})
    for (bool v4 : {false, true})
      for (bool ref : {false, true}) {
        auto R = ref ? sinkhorn_reference(Z, opts(20, eps, v4)) : sinkhorn(Z, opts(20, eps, v4));
        EXPECT_TRUE(torch::equal(R, torch::ones_like(R)));
        auto g = torch::autograd::grad({R.sum()}, {Z})[0];
        EXPECT_EQ(g.abs().max().item<double>(), 0.0);
      }
}

TEST(Sinkhorn, FusedEqualsReference) {
  torch::manual_seed(13);
  for (int n : {2, 3, 4, 5})
    for (bool v4 : {false, true}) {
      auto Z = (torch::randn({37, n, n}) * 3).requires_grad_(true);  // 37: a partial block of tokens
      auto o = opts(20, 1e-6, v4);
      auto a = sinkhorn(Z, o), b = sinkhorn_reference(Z, o);
      EXPECT_LT(maxdiff(a, b), 2e-6) << "n " << n;
      auto w = torch::randn_like(a);
      auto ga = torch::autograd::grad({(a * w).sum()}, {Z})[0], gb = torch::autograd::grad({(b * w).sum()}, {Z})[0];
      EXPECT_LT(maxdiff(ga, gb), 1e-4 * std::max(1.0, gb.abs().max().item<double>())) << "n " << n;
    }
}

TEST(Sinkhorn, EpsAfterFirstMatchesSpec) {
  // V4: first column step is a plain softmax, then + eps; afterwards as usual.
  torch::manual_seed(14);
  auto Z = torch::randn({4, 4, 4}, torch::kDouble);
  const double eps = 1e-3;  // large enough to see the difference
  auto M = torch::softmax(Z, 1) + eps;
  M = M / (M.sum(2, true) + eps);
  for (int s = 1; s < 5; ++s) {
    M = M / (M.sum(1, true) + eps);
    M = M / (M.sum(2, true) + eps);
  }
  EXPECT_LT(maxdiff(sinkhorn(Z, opts(5, eps, true)), M), 1e-14);
  EXPECT_GT(maxdiff(sinkhorn(Z, opts(5, eps, false)), M), 1e-5);
}

TEST(Sinkhorn, NonContiguousEmptyAndAutocast) {
  torch::manual_seed(15);
  auto base = torch::randn({20, 4, 4});
  auto Zt = base.transpose(1, 2);
  EXPECT_LT(maxdiff(sinkhorn(Zt), sinkhorn_reference(Zt)), 2e-6);
  auto E = torch::zeros({0, 4, 4}).requires_grad_(true);
  auto R = sinkhorn(E);
  EXPECT_EQ(R.sizes(), E.sizes());
  R.sum().backward();
  EXPECT_EQ(E.grad().sizes(), E.sizes());
  at::Tensor in_ac;
  {
    compat::AutocastScope ac(true);
    in_ac = sinkhorn(base);
  }
  EXPECT_EQ(in_ac.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::equal(in_ac, sinkhorn(base)));
}

TEST(Gradcheck, SinkhornFp64) {
  torch::manual_seed(16);
  for (int n : {1, 2, 4})
    for (int iters : {1, 20})
      for (double eps : {0.0, 1e-6})
        for (bool v4 : {false, true}) {
          auto o = opts(iters, eps, v4);
          auto f = [o](const std::vector<at::Tensor>& in) { return sinkhorn(in[0], o); };
          EXPECT_LT(gradtest::gradcheck_max_error(f, {torch::randn({3, n, n}) * 2}), 1e-7)
              << "n " << n << " iters " << iters << " eps " << eps << " v4 " << v4;
        }
}

TEST(Sinkhorn, BadInputs) {
  auto Z = torch::zeros({2, 4, 4});
  expect_error([] { sinkhorn(torch::zeros({4, 4})); }, "(T, n, n)");
  expect_error([] { sinkhorn(torch::zeros({2, 3, 4})); }, "got [2, 3, 4]");
  expect_error([] { sinkhorn_reference(torch::zeros({2, 0, 0})); }, "n >= 1");
  expect_error([] { sinkhorn(torch::zeros({2, 4, 4}, torch::kInt)); }, "float32 or float64");
  expect_error([&] { sinkhorn(Z, opts(0, 1e-6)); }, "iters must be >= 1, got 0");
  expect_error([&] { sinkhorn_reference(Z, opts(20, -1e-6)); }, "eps must be finite and >= 0");
}

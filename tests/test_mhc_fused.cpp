// The fused mHC sub-layer input (projection + maps + pre-mix in one op) against
// the chain of unfused ops it replaces.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "expect_error.h"
#include "gradcheck.h"
#include "kernels/cpu/streams/mhc_input.h"

using namespace dynarch;

namespace {

struct Inputs {
  at::Tensor X, phi, bias, alpha;
};

Inputs random_inputs(int64_t T, int64_t n, int64_t D, at::ScalarType dt) {
  const int64_t K = n * n + 2 * n;
  auto o = at::TensorOptions().dtype(dt);
  return {torch::randn({T, n, D}, o), torch::randn({K, n * D}, o) * 0.2, torch::randn({K}, o),
          torch::tensor({0.8, 1.3, 0.6}, o)};
}

// One scalar from all four outputs with fixed random weights (drawn by shape:
// randn_like would follow the strides of the reference's transposed Z).
at::Tensor combine(const MhcPre& p, uint64_t seed) {
  torch::manual_seed(seed);
  auto w = [](const at::Tensor& t) { return torch::randn(t.sizes(), t.options()); };
  return (p.u * w(p.u)).sum() + (p.pre * w(p.pre)).sum() + (p.post * w(p.post)).sum() + (p.Z * w(p.Z)).sum();
}

}  // namespace

TEST(MhcFused, EqualsReferenceWithGradients) {
  for (double pre_eps : {0.0, 1e-6}) {
    torch::manual_seed(1);
    auto in = random_inputs(37, 4, 24, at::kFloat);
    std::vector<at::Tensor> a = {in.X, in.phi, in.bias, in.alpha}, b;
    for (auto& t : a) {
      b.push_back(t.clone().requires_grad_(true));
      t.requires_grad_(true);
    }
    auto pf = mhc_pre(a[0], a[1], a[2], a[3], 1e-6, pre_eps);
    auto pr = mhc_pre_reference(b[0], b[1], b[2], b[3], 1e-6, pre_eps);
    EXPECT_LT((pf.u - pr.u).abs().max().item<double>(), 1e-5);
    EXPECT_LT((pf.pre - pr.pre).abs().max().item<double>(), 1e-6);
    EXPECT_LT((pf.post - pr.post).abs().max().item<double>(), 1e-6);
    EXPECT_LT((pf.Z - pr.Z).abs().max().item<double>(), 1e-5);
    combine(pf, 3).backward();
    combine(pr, 3).backward();
    for (size_t i = 0; i < a.size(); ++i) {
      const double scale = std::max(1.0, b[i].grad().abs().max().item<double>());
      EXPECT_LT((a[i].grad() - b[i].grad()).abs().max().item<double>() / scale, 1e-4) << "input " << i;
    }
  }
}

TEST(MhcFused, GradcheckFp64) {
  for (int64_t n : {1, 2, 3, 4, 5}) {
    torch::manual_seed(n);
    auto in = random_inputs(4, n, 5, at::kDouble);
    auto f = [&](const std::vector<at::Tensor>& x) { return combine(mhc_pre(x[0], x[1], x[2], x[3], 1e-6, 1e-6), 9); };
    EXPECT_LT(gradtest::gradcheck_max_error(f, {in.X, in.phi, in.bias, in.alpha}), 1e-7) << "n=" << n;
  }
}

TEST(MhcFused, OnlySomeOutputsUsedAndEmptyInput) {
  torch::manual_seed(2);
  auto in = random_inputs(5, 4, 8, at::kFloat);
  in.X.requires_grad_(true);
  auto p = mhc_pre(in.X, in.phi, in.bias, in.alpha, 1e-6, 0);
  p.Z.sum().backward();  // u, pre, post unused: undefined incoming gradients
  EXPECT_TRUE(in.X.grad().defined());
  auto e = random_inputs(0, 4, 8, at::kFloat);
  EXPECT_EQ(mhc_pre(e.X, e.phi, e.bias, e.alpha, 1e-6, 0).u.size(0), 0);
}

TEST(MhcFused, BadInputsAreNamed) {
  auto in = random_inputs(3, 4, 8, at::kFloat);
  testutil::expect_error([&] { mhc_pre(in.X, in.phi.narrow(0, 0, 5), in.bias, in.alpha, 1e-6, 0); }, "phi must have shape");
  testutil::expect_error([&] { mhc_pre(in.X, in.phi, in.bias.narrow(0, 0, 3), in.alpha, 1e-6, 0); }, "bias");
  testutil::expect_error([&] { mhc_pre(in.X.view({3, 32}), in.phi, in.bias, in.alpha, 1e-6, 0); }, "(T, n, D)");
  testutil::expect_error([&] { mhc_pre(in.X, in.phi.to(at::kDouble), in.bias, in.alpha, 1e-6, 0); }, "dtype");
}

namespace {
// The pending merge X = R Xp + post^T y in front of mhc_pre (mhc_merge_pre).
struct MergeInputs {
  at::Tensor Xp, R, post, y;
};
MergeInputs random_merge(int64_t T, int64_t n, int64_t D, at::ScalarType dt) {
  auto o = at::TensorOptions().dtype(dt);
  return {torch::randn({T, n, D}, o), torch::rand({T, n, n}, o) * 0.5, torch::rand({T, n}, o) * 2,
          torch::randn({T, D}, o)};
}
at::Tensor combine_merge(const MhcMergePre& m, uint64_t seed) {
  torch::manual_seed(seed + 100);
  return (m.X * torch::randn(m.X.sizes(), m.X.options())).sum() + combine(m.p, seed);
}
}  // namespace

// 37 tokens: two full cache blocks of 16 and a partial one.
TEST(MhcMergePre, EqualsReferenceWithGradients) {
  torch::manual_seed(4);
  auto mg = random_merge(37, 4, 24, at::kFloat);
  auto in = random_inputs(37, 4, 24, at::kFloat);
  std::vector<at::Tensor> a = {mg.Xp, mg.R, mg.post, mg.y, in.phi, in.bias, in.alpha}, b;
  for (auto& t : a) {
    b.push_back(t.clone().requires_grad_(true));
    t.requires_grad_(true);
  }
  auto f = mhc_merge_pre(a[0], a[1], a[2], a[3], a[4], a[5], a[6], 1e-6, 1e-6);
  auto r = mhc_merge_pre_reference(b[0], b[1], b[2], b[3], b[4], b[5], b[6], 1e-6, 1e-6);
  EXPECT_LT((f.X - r.X).abs().max().item<double>(), 1e-5);
  EXPECT_LT((f.p.u - r.p.u).abs().max().item<double>(), 1e-5);
  EXPECT_LT((f.p.pre - r.p.pre).abs().max().item<double>(), 1e-6);
  EXPECT_LT((f.p.post - r.p.post).abs().max().item<double>(), 1e-6);
  EXPECT_LT((f.p.Z - r.p.Z).abs().max().item<double>(), 1e-5);
  EXPECT_GT(f.X.abs().max().item<double>(), 0.5);  // the merge really ran
  combine_merge(f, 5).backward();
  combine_merge(r, 5).backward();
  for (size_t i = 0; i < a.size(); ++i) {
    const double scale = std::max(1.0, b[i].grad().abs().max().item<double>());
    EXPECT_GT(b[i].grad().abs().max().item<double>(), 0.0) << "input " << i;
    EXPECT_LT((a[i].grad() - b[i].grad()).abs().max().item<double>() / scale, 1e-4) << "input " << i;
  }
}

TEST(MhcMergePre, GradcheckFp64) {
  for (int64_t n : {1, 2, 3, 4, 5}) {  // 1-4: fixed-n kernels, 5: the runtime-n loops
    torch::manual_seed(10 + n);
    auto mg = random_merge(19, n, 5, at::kDouble);  // crosses a cache block boundary
    auto in = random_inputs(19, n, 5, at::kDouble);
    auto f = [&](const std::vector<at::Tensor>& x) {
      return combine_merge(mhc_merge_pre(x[0], x[1], x[2], x[3], x[4], x[5], x[6], 1e-6, 1e-6), 9);
    };
    EXPECT_LT(gradtest::gradcheck_max_error(f, {mg.Xp, mg.R, mg.post, mg.y, in.phi, in.bias, in.alpha}), 1e-7)
        << "n=" << n;
  }
}

TEST(MhcMergePre, MergedStateUnusedAndBadInputs) {
  torch::manual_seed(7);
  auto mg = random_merge(5, 4, 8, at::kFloat);
  auto in = random_inputs(5, 4, 8, at::kFloat);
  mg.Xp.requires_grad_(true);
  auto m = mhc_merge_pre(mg.Xp, mg.R, mg.post, mg.y, in.phi, in.bias, in.alpha, 1e-6, 0);
  m.p.u.sum().backward();  // X itself unused: undefined incoming gradient
  EXPECT_GT(mg.Xp.grad().abs().max().item<double>(), 0.0);
  using testutil::expect_error;
  expect_error([&] { mhc_merge_pre(mg.Xp, mg.R.narrow(2, 0, 3), mg.post, mg.y, in.phi, in.bias, in.alpha, 1e-6, 0); },
               "mhc_merge_pre: R must have shape");
  expect_error([&] { mhc_merge_pre(mg.Xp, mg.R, mg.post, mg.y.narrow(1, 0, 7), in.phi, in.bias, in.alpha, 1e-6, 0); },
               "y must have shape");
  expect_error([&] { mhc_merge_pre(mg.Xp, mg.R, mg.post.to(at::kDouble), mg.y, in.phi, in.bias, in.alpha, 1e-6, 0); },
               "post must have shape");
}

// The per-thread sums of dphi, dbias and dalpha are added in block order, so the
// gradients are the same bits on every run with the same thread count.
TEST(MhcMergePre, GradientsRepeatBitForBit) {
  const int saved = at::get_num_threads();
  at::set_num_threads(3);
  torch::manual_seed(12);
  auto mg = random_merge(200, 4, 40, at::kFloat);
  auto in = random_inputs(200, 4, 40, at::kFloat);
  std::vector<at::Tensor> first;
  for (int run = 0; run < 4; ++run) {
    std::vector<at::Tensor> x = {mg.Xp, mg.R, mg.post, mg.y, in.phi, in.bias, in.alpha};
    for (auto& t : x) t = t.clone().requires_grad_(true);
    auto m = mhc_merge_pre(x[0], x[1], x[2], x[3], x[4], x[5], x[6], 1e-6, 1e-6);
    auto g = torch::autograd::grad({combine_merge(m, 3)}, {x[4], x[5], x[6]});
    if (run == 0) first = g;
    for (size_t i = 0; i < g.size(); ++i) EXPECT_TRUE(torch::equal(g[i], first[i])) << "run " << run << " grad " << i;
  }
  at::set_num_threads(saved);
}

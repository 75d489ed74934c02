// HC / mHC mixing kernels (mhc.md §3, §8): fused == reference with gradients,
// fp64 gradcheck w.r.t. every input, shapes, dtypes, autocast, bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/compat.h"
#include "core/error.h"
#include "expect_error.h"
#include "gradcheck.h"
#include "kernels/cpu/streams/stream_mix.h"

using namespace dynarch;
using testutil::expect_error;

namespace {

using Op = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

double maxdiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Fused vs reference on the same fp32 inputs: outputs and the gradients of
// sum(out * w) w.r.t. every input, relative to the largest reference value.
void expect_same(const Op& fused, const Op& ref, std::vector<at::Tensor> in, double tol) {
  for (auto& x : in) x = x.detach().clone().requires_grad_(true);
  auto a = fused(in), b = ref(in);
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_LT(maxdiff(a, b), tol * std::max(1.0, b.abs().max().item<double>()));
  auto w = torch::randn_like(a);
  auto ga = torch::autograd::grad({(a * w).sum()}, in), gb = torch::autograd::grad({(b * w).sum()}, in);
  for (size_t i = 0; i < in.size(); ++i)
    EXPECT_LT(maxdiff(ga[i], gb[i]), tol * std::max(1.0, gb[i].abs().max().item<double>())) << "input " << i;
}

const Op pre_mix = [](const std::vector<at::Tensor>& v) { return hc_pre_mix(v[0], v[1]); };
const Op pre_mix_ref = [](const std::vector<at::Tensor>& v) { return hc_pre_mix_reference(v[0], v[1]); };
const Op post_res = [](const std::vector<at::Tensor>& v) { return hc_post_res(v[0], v[1], v[2], v[3]); };
const Op post_res_ref = [](const std::vector<at::Tensor>& v) { return hc_post_res_reference(v[0], v[1], v[2], v[3]); };
Op project(double eps) {
  return [eps](const std::vector<at::Tensor>& v) { return mhc_project(v[0], v[1], eps); };
}
Op project_ref(double eps) {
  return [eps](const std::vector<at::Tensor>& v) { return mhc_project_reference(v[0], v[1], eps); };
}

}  // namespace

TEST(HcOps, PreMixEqualsReference) {
  torch::manual_seed(20);
  for (int64_t n : {1, 2, 4, 5}) expect_same(pre_mix, pre_mix_ref, {torch::randn({37, n, 50}), torch::rand({37, n})}, 1e-6);
  // exact value: u = sum_j pre_j x_j
  auto X = torch::arange(12, torch::kFloat).view({1, 3, 4}), pre = torch::tensor({{1.0f, 0.5f, -2.0f}});
  auto u = hc_pre_mix(X, pre);
  EXPECT_TRUE(torch::equal(u[0], X[0][0] + 0.5 * X[0][1] - 2 * X[0][2]));
}

TEST(HcOps, PostResEqualsReference) {
  torch::manual_seed(21);
  for (int64_t n : {1, 2, 3, 4, 5})  // fixed-n kernels up to 4, runtime-n loops beyond
    expect_same(post_res, post_res_ref,
                {torch::randn({37, n, 50}), torch::rand({37, n, n}), torch::rand({37, n}) * 2, torch::randn({37, 50})},
                1e-6);
  // R = I, post = 1 on stream 1: only that stream gets y added.
  auto X = torch::randn({2, 3, 5}), y = torch::randn({2, 5});
  auto R = torch::eye(3).expand({2, 3, 3}), post = torch::tensor({0.0f, 1.0f, 0.0f}).expand({2, 3});
  auto out = hc_post_res(X, R, post, y);  // expanded (non-contiguous) R and post
  EXPECT_TRUE(torch::equal(out.select(1, 0), X.select(1, 0)));
  EXPECT_TRUE(torch::allclose(out.select(1, 1), X.select(1, 1) + y));
}

TEST(HcOps, ProjectEqualsReference) {
  torch::manual_seed(22);
  for (int64_t n : {1, 4})
    for (int64_t K : {n * n + 2 * n, int64_t(5)})
      expect_same(project(1e-6), project_ref(1e-6), {torch::randn({37, n, 50}) * 3, torch::randn({K, n * 50}) * 0.1},
                  1e-5);
  // rho is the RMS over all n*D elements of the token, not per stream.
  auto X = torch::zeros({1, 2, 2});
  X[0][0] = 3;  // stream 0 = [3, 3], stream 1 = [0, 0]: mean(v^2) = 4.5
  auto phi = torch::eye(4);
  auto m = mhc_project(X, phi, 0.0);
  EXPECT_NEAR(m[0][0].item<double>(), 3 / std::sqrt(4.5), 1e-6);
  EXPECT_EQ(m[0][2].item<double>(), 0.0);
}

TEST(HcOps, ProjectIgnoresAutocast) {
  torch::manual_seed(23);
  auto X = torch::randn({64, 4, 128}), phi = torch::randn({24, 512}) * 0.05;
  auto plain = mhc_project(X, phi, 1e-6);
  at::Tensor ac, ac_ref;
  {
    compat::AutocastScope on(true);
    ac = mhc_project(X, phi, 1e-6);
    ac_ref = mhc_project_reference(X, phi, 1e-6);
  }
  EXPECT_EQ(ac.scalar_type(), at::kFloat);
  EXPECT_LT(maxdiff(ac, plain), 1e-6);  // a bf16 GEMM would be off by ~1e-2
  EXPECT_LT(maxdiff(ac_ref, plain), 1e-5);
}

TEST(HcOps, PartialGradsNonContiguousAndEmpty) {
  torch::manual_seed(24);
  // Only y and R require grad.
  auto X = torch::randn({5, 4, 8}), post = torch::rand({5, 4});
  auto R = torch::rand({5, 4, 4}).requires_grad_(true), y = torch::randn({5, 8}).requires_grad_(true);
  auto out = hc_post_res(X, R, post, y);
  auto g = torch::autograd::grad({out.sum()}, {R, y});
  auto out2 = hc_post_res_reference(X, R, post, y);
  auto g2 = torch::autograd::grad({out2.sum()}, {R, y});
  EXPECT_LT(maxdiff(g[0], g2[0]), 1e-5);
  EXPECT_LT(maxdiff(g[1], g2[1]), 1e-5);
  // Non-contiguous X (D-major storage).
  auto Xt = torch::randn({5, 8, 4}).transpose(1, 2);
  EXPECT_LT(maxdiff(hc_pre_mix(Xt, post), hc_pre_mix_reference(Xt, post)), 1e-6);
  auto phit = torch::randn({32, 24}).t();
  EXPECT_LT(maxdiff(mhc_project(Xt, phit, 1e-6), mhc_project_reference(Xt, phit, 1e-6)), 1e-5);
  // T = 0
  auto E = torch::zeros({0, 4, 8}).requires_grad_(true);
  auto phi = torch::randn({24, 32}).requires_grad_(true);
  auto m = mhc_project(E, phi, 1e-6);
  EXPECT_EQ(m.sizes(), (at::IntArrayRef{0, 24}));
  auto u = hc_pre_mix(E, torch::zeros({0, 4}));
  auto x2 = hc_post_res(E, torch::zeros({0, 4, 4}), torch::zeros({0, 4}), torch::zeros({0, 8}));
  (m.sum() + u.sum() + x2.sum()).backward();
  EXPECT_EQ(E.grad().sizes(), E.sizes());
  EXPECT_EQ(phi.grad().abs().sum().item<double>(), 0.0);
}

TEST(Gradcheck, HcPreMixFp64) {
  torch::manual_seed(25);
  for (int64_t n : {1, 3, 4, 5})
    EXPECT_LT(gradtest::gradcheck_max_error(pre_mix, {torch::randn({3, n, 5}), torch::randn({3, n})}), 1e-7);
}

TEST(Gradcheck, HcPostResFp64) {
  torch::manual_seed(26);
  for (int64_t n : {1, 3, 4, 5})
    EXPECT_LT(gradtest::gradcheck_max_error(post_res, {torch::randn({3, n, 5}), torch::randn({3, n, n}),
                                                       torch::randn({3, n}), torch::randn({3, 5})}),
              1e-7);
}

TEST(Gradcheck, MhcProjectFp64) {
  torch::manual_seed(27);
  for (int64_t n : {1, 2})
    for (double eps : {0.0, 1e-3})  // eps large enough to matter for the rho term
      EXPECT_LT(gradtest::gradcheck_max_error(project(eps), {torch::randn({3, n, 4}), torch::randn({n * n + 2 * n, n * 4})}),
                1e-7)
          << "n " << n << " eps " << eps;
}

TEST(HcOps, BadInputs) {
  auto X = torch::zeros({2, 4, 8});
  expect_error([] { hc_pre_mix(torch::zeros({4, 8}), torch::zeros({4})); }, "X must have shape (T, n, D)");
  expect_error([&] { hc_pre_mix(X, torch::zeros({2, 3})); }, "pre must have shape [2, 4]");
  expect_error([&] { hc_pre_mix(X, torch::zeros({2, 4}, torch::kDouble)); }, "pre has dtype Double but X has Float");
  expect_error([] { hc_pre_mix(torch::zeros({2, 4, 8}, torch::kLong), torch::zeros({2, 4})); }, "float32 or float64");
  expect_error([&] { hc_post_res(X, torch::zeros({2, 4, 3}), torch::zeros({2, 4}), torch::zeros({2, 8})); },
               "R must have shape [2, 4, 4]");
  expect_error([&] { hc_post_res(X, torch::zeros({2, 4, 4}), torch::zeros({3, 4}), torch::zeros({2, 8})); },
               "post must have shape [2, 4]");
  expect_error([&] { hc_post_res_reference(X, torch::zeros({2, 4, 4}), torch::zeros({2, 4}), torch::zeros({2, 7})); },
               "y must have shape [2, 8]");
  expect_error([&] { mhc_project(X, torch::zeros({24, 31}), 1e-6); }, "phi must have shape [24, 32]");
  expect_error([&] { mhc_project(X, torch::zeros({24}), 1e-6); }, "phi must have shape (K, n*D)");
  expect_error([&] { mhc_project_reference(X, torch::zeros({24, 32}), -1.0); }, "eps must be finite and >= 0");
  expect_error([] { mhc_project(torch::zeros({2, 0, 8}), torch::zeros({1, 0}), 1e-6); }, "n >= 1");
}

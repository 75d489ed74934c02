// The CUDA mHC sub-layer input (kernels/cuda/streams/mhc_pre_cuda.h) against
// the CPU references, as test_cuda_kernels.cpp does for the other CUDA ops:
// outputs and all gradients at fp32 (<= 1e-4 relative), fp64 gradcheck on the
// device, the CPU ops' hooks reaching the binding, bad input. Every test skips
// when no GPU is visible (always in the CPU build).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda_test_util.h"

#include "expect_error.h"
#include "gradcheck.h"
#include "kernels/cpu/streams/mhc_input.h"
#include "kernels/cpu/streams/stream_mix.h"

#if DYNARCH_CUDA
#include "kernels/cuda/streams/mhc_pre_cuda.h"
#endif

using namespace dynarch;
using dynarch::testutil::rel;
using testutil::expect_error;

namespace {

// X, phi, bias, alpha of one sub-layer (CPU, dtype dt).
std::vector<at::Tensor> mhc_inputs(int64_t T, int64_t n, int64_t D, at::ScalarType dt) {
  const int64_t K = n * n + 2 * n;
  auto o = at::TensorOptions().dtype(dt);
  return {torch::randn({T, n, D}, o), torch::randn({K, n * D}, o) * 0.2, torch::randn({K}, o),
          torch::tensor({0.8, 1.3, 0.6}, o)};
}

std::vector<at::Tensor> fields(const MhcPre& p) { return {p.u, p.pre, p.post, p.Z}; }

// mhc_pre on CUDA copies (the hook) vs mhc_pre_reference on CPU copies: the four
// outputs and the gradients of sum(out_i * w_i) over the outputs in `used`.
void expect_pre_matches(int64_t T, int64_t n, int64_t D, const std::vector<int>& used, const std::string& what) {
  auto in = mhc_inputs(T, n, D, at::kFloat);
  std::vector<at::Tensor> dev, cpu;
  for (auto& t : in) {
    dev.push_back(t.cuda().requires_grad_(true));
    cpu.push_back(t.clone().requires_grad_(true));
  }
  auto a = fields(mhc_pre(dev[0], dev[1], dev[2], dev[3], 1e-6, 1e-6));
  auto b = fields(mhc_pre_reference(cpu[0], cpu[1], cpu[2], cpu[3], 1e-6, 1e-6));
  const char* names[4] = {"u", "pre", "post", "Z"};
  at::Tensor la = a[0].sum() * 0, lb = b[0].sum() * 0;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(a[i].is_cuda()) << what;
    ASSERT_EQ(a[i].sizes(), b[i].sizes()) << what << ": " << names[i];
    EXPECT_LT(rel(a[i], b[i]), 1e-4) << what << ": " << names[i];
  }
  for (int i : used) {
    auto w = torch::randn(b[i].sizes());
    la = la + (a[i] * w.cuda()).sum();
    lb = lb + (b[i] * w).sum();
  }
  auto ga = torch::autograd::grad({la}, dev), gb = torch::autograd::grad({lb}, cpu);
  for (int i = 0; i < 4; ++i) EXPECT_LT(rel(ga[i], gb[i]), 1e-4) << what << ": gradient of input " << i;
}

}  // namespace

TEST(CudaMhcPre, MatchesReference) {
  REQUIRE_CUDA();
  torch::manual_seed(21);
  for (int64_t n : {1, 2, 4, 8})
    for (int64_t D : {50, 1030})
      for (int64_t T : {1, 37}) {
        const std::string what = "n=" + std::to_string(n) + " D=" + std::to_string(D) + " T=" + std::to_string(T);
        expect_pre_matches(T, n, D, {0, 1, 2, 3}, what);
      }
  // Some outputs unused: undefined incoming gradients (null in the kernel).
  expect_pre_matches(300, 4, 256, {0}, "only u");
  expect_pre_matches(300, 4, 256, {3}, "only Z");
  expect_pre_matches(300, 4, 256, {1, 2}, "pre and post");
}

TEST(CudaMhcPre, DeterministicAndNoTokens) {
  REQUIRE_CUDA();
  torch::manual_seed(22);
  auto in = mhc_inputs(4096, 4, 512, at::kFloat);
  std::vector<at::Tensor> dev;
  for (auto& t : in) dev.push_back(t.cuda().requires_grad_(true));
  auto run = [&] {
    auto p = mhc_pre(dev[0], dev[1], dev[2], dev[3], 1e-6, 1e-6);
    return torch::autograd::grad({p.u.sum() + p.pre.sum() + (p.post * 2).sum() + p.Z.pow(2).sum()}, dev);
  };
  auto g1 = run(), g2 = run();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(g1[i], g2[i])) << "gradient of input " << i;
  auto e = mhc_inputs(0, 4, 8, at::kFloat);
  EXPECT_EQ(mhc_pre(e[0].cuda(), e[1].cuda(), e[2].cuda(), e[3].cuda(), 1e-6, 0).u.size(0), 0);
}

TEST(CudaMhcPre, GradcheckFp64) {
  REQUIRE_CUDA();
  for (int64_t n : {1, 2, 4}) {
    torch::manual_seed(23 + n);
    std::vector<at::Tensor> in;
    for (auto& t : mhc_inputs(3, n, 5, at::kDouble)) in.push_back(t.cuda());
    auto f = [](const std::vector<at::Tensor>& x) {
      auto p = mhc_pre(x[0], x[1], x[2], x[3], 1e-6, 1e-6);
      return at::cat({p.u.flatten(), p.pre.flatten(), p.post.flatten(), p.Z.flatten()});
    };
    EXPECT_LT(gradtest::gradcheck_max_error(f, in), 1e-7) << "n=" << n;
  }
}

TEST(CudaMhcProject, MatchesReferenceAndGradcheck) {
  REQUIRE_CUDA();
  torch::manual_seed(24);
  for (auto [T, n, D, K] : {std::array<int64_t, 4>{37, 4, 1030, 24}, {1, 2, 5, 3}, {200, 1, 64, 70}}) {
    std::vector<at::Tensor> in = {torch::randn({T, n, D}), torch::randn({K, n * D}) * 0.2};
    std::vector<at::Tensor> dev = {in[0].cuda().requires_grad_(true), in[1].cuda().requires_grad_(true)};
    std::vector<at::Tensor> cpu = {in[0].clone().requires_grad_(true), in[1].clone().requires_grad_(true)};
    auto a = mhc_project(dev[0], dev[1], 1e-6), b = mhc_project_reference(cpu[0], cpu[1], 1e-6);
    ASSERT_TRUE(a.is_cuda());
    EXPECT_LT(rel(a, b), 1e-4) << T;
    auto w = torch::randn(b.sizes());
    auto ga = torch::autograd::grad({(a * w.cuda()).sum()}, dev), gb = torch::autograd::grad({(b * w).sum()}, cpu);
    EXPECT_LT(rel(ga[0], gb[0]), 1e-4) << T;
    EXPECT_LT(rel(ga[1], gb[1]), 1e-4) << T;
  }
  auto f = [](const std::vector<at::Tensor>& x) { return mhc_project(x[0], x[1], 1e-6); };
  EXPECT_LT(gradtest::gradcheck_max_error(f, {torch::randn({3, 2, 5}, at::kCUDA), torch::randn({4, 10}, at::kCUDA)}),
            1e-7);
}

TEST(CudaMhcPre, HooksAndBadInput) {
  REQUIRE_CUDA();
#if DYNARCH_CUDA
  torch::manual_seed(25);
  std::vector<at::Tensor> d;
  for (auto& t : mhc_inputs(64, 4, 40, at::kFloat)) d.push_back(t.cuda());
  auto X = d[0], phi = d[1], bias = d[2], alpha = d[3];
  auto h = mhc_pre(X, phi, bias, alpha, 1e-6, 1e-6);
  auto c = cuda::mhc_pre(X, phi, bias, alpha, 1e-6, 1e-6);  // the op's hook reaches the binding
  EXPECT_TRUE(torch::equal(h.u, c.u) && torch::equal(h.pre, c.pre) && torch::equal(h.post, c.post) &&
              torch::equal(h.Z, c.Z));
  EXPECT_TRUE(torch::equal(mhc_project(X, phi, 1e-6), cuda::mhc_project(X, phi, 1e-6)));
  // mhc_merge_pre on CUDA: hc_post_res then mhc_pre, both through their hooks.
  auto R = torch::rand({64, 4, 4}, at::kCUDA), post = torch::rand({64, 4}, at::kCUDA) * 2;
  auto y = torch::randn({64, 40}, at::kCUDA);
  auto m = mhc_merge_pre(X, R, post, y, phi, bias, alpha, 1e-6, 1e-6);
  auto r = mhc_merge_pre_reference(X.cpu(), R.cpu(), post.cpu(), y.cpu(), phi.cpu(), bias.cpu(), alpha.cpu(), 1e-6,
                                   1e-6);
  EXPECT_LT(rel(m.X, r.X), 1e-5);
  EXPECT_LT(rel(m.p.u, r.p.u), 1e-4);
  EXPECT_LT(rel(m.p.Z, r.p.Z), 1e-4);
  expect_error([&] { mhc_pre(X, phi.cpu(), bias, alpha, 1e-6, 0); }, "mhc_pre: phi is on cpu");
  expect_error([&] { mhc_pre(X, phi, bias.to(at::kDouble), alpha, 1e-6, 0); }, "mhc_pre: bias must be Float");
  expect_error([&] { mhc_pre(X, phi.narrow(0, 0, 5), bias, alpha, 1e-6, 0); }, "mhc_pre: phi must have shape");
  expect_error([&] { mhc_pre(X.to(at::kHalf), phi, bias, alpha, 1e-6, 0); }, "mhc_pre: X must be");
  auto X9 = torch::randn({2, 9, 3}, at::kCUDA);
  auto phi9 = torch::randn({99, 27}, at::kCUDA), bias9 = torch::randn({99}, at::kCUDA);
  // n above the kernel's cap: the binding refuses, the op takes the reference.
  expect_error([&] { cuda::mhc_pre(X9, phi9, bias9, alpha, 1e-6, 0); }, "n <= 8");
  auto p9 = mhc_pre(X9, phi9, bias9, alpha, 1e-6, 0);
  auto r9 = mhc_pre_reference(X9.cpu(), phi9.cpu(), bias9.cpu(), alpha.cpu(), 1e-6, 0);
  EXPECT_LT(rel(p9.u, r9.u), 1e-4);
  expect_error([&] { cuda::mhc_pre(X.cpu(), phi, bias, alpha, 1e-6, 0); }, "mhc_pre: X must be a CUDA tensor");
  expect_error([&] { mhc_project(X, phi.narrow(1, 0, 7), 1e-6); }, "mhc_project: phi must have shape");
#endif
}

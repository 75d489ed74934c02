// The fused Mamba-2 core (kernels/cpu/mamba/mamba_core.h) against the op-by-op layer with the
// sequential scan, and fp64 gradcheck of the custom op.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <optional>

#include "core/forward_context.h"
#include "gradcheck.h"
#include "kernels/cpu/mamba/mamba_core.h"
#include "model/layers/mamba2.h"

using namespace dynarch;

namespace {
double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Non-trivial values for the parameters the init sets to constants.
void randomise(Mamba2& m) {
  torch::NoGradGuard ng;
  m.conv1d->bias.normal_();
  m.D.normal_();
  m.norm->weight.uniform_(0.5, 1.5);
  m.dt_bias.uniform_(-2.0, 1.0);  // softplus(dt + bias) spans small and O(1) steps
}

// Output and gradients (input and every parameter) of one forward.
std::vector<at::Tensor> run(Mamba2& m, const at::Tensor& x, const at::Tensor& lengths, const at::Tensor& w) {
  auto xi = x.detach().clone().requires_grad_(true);
  auto y = m.forward(xi, nullptr, 0, lengths);
  std::vector<at::Tensor> params{xi};
  for (auto& p : m.parameters()) params.push_back(p);
  auto g = torch::autograd::grad({(y * w).sum()}, params);
  g.insert(g.begin(), y.detach());
  return g;
}
// The same in KernelMode::reference: the op-by-op layer with the sequential scan.
std::vector<at::Tensor> run_reference(Mamba2& m, const at::Tensor& x, const at::Tensor& lengths, const at::Tensor& w) {
  ReferenceKernelsScope reference;
  return run(m, x, lengths, w);
}
}  // namespace

TEST(FusedMamba, EqualsSequentialReferenceFp64) {
  torch::manual_seed(21);
  // headdim 8 and 32 (vector kernels), 6 (scalar kernel); L = 70 spans three
  // state checkpoints, one partial.
  for (int64_t hd : {8, 32, 6}) {
    Mamba2 m(48, 4, 4, 2, hd, 4);
    m.to(torch::kDouble);
    randomise(m);
    auto x = torch::randn({2, 70, 48}, torch::kDouble);
    auto w = torch::randn({2, 70, 48}, torch::kDouble);
    for (bool with_len : {false, true}) {
      auto len = with_len ? torch::tensor({70, 45}, at::kLong) : at::Tensor();
      auto a = run(m, x, len, w);
      auto b = run_reference(m, x, len, w);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_LT(maxdiff(a[i], b[i]), 1e-10) << "tensor " << i << " len " << with_len << " headdim " << hd;
    }
  }
}

TEST(FusedMamba, HeadGroupsWhenRowsAreFewerThanThreads) {
  // B = 1 with 3 threads splits the heads of the reverse scan into groups.
  torch::manual_seed(22);
  const int saved = at::get_num_threads();
  Mamba2 m(16, 4, 4, 2, 4, 4);  // 8 heads
  m.to(torch::kDouble);
  randomise(m);
  auto x = torch::randn({1, 40, 16}, torch::kDouble), w = torch::randn({1, 40, 16}, torch::kDouble);
  auto b = run_reference(m, x, {}, w);
  at::set_num_threads(3);
  auto a = run(m, x, {}, w);
  at::set_num_threads(saved);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT(maxdiff(a[i], b[i]), 1e-10) << "tensor " << i;
}

TEST(FusedMamba, ContinuesFromCacheLikeReference) {
  torch::manual_seed(23);
  Mamba2 m(16, 4, 4, 2, 8, 4);
  m.to(torch::kDouble);
  randomise(m);
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 50, 16}, torch::kDouble);
  auto len = torch::tensor({20, 17}, at::kLong);
  std::vector<at::Tensor> outs[2];
  LayerCache caches[2];
  for (int ref = 0; ref < 2; ++ref) {
    std::optional<ReferenceKernelsScope> reference;
    if (ref == 1) reference.emplace();
    caches[ref] = m.new_cache(2, at::kDouble);
    outs[ref].push_back(m.forward(x.narrow(1, 0, 20), &caches[ref], 0, len));
    outs[ref].push_back(m.forward(x.narrow(1, 20, 2), &caches[ref], 20));  // shorter than the conv window
    outs[ref].push_back(m.forward(x.narrow(1, 22, 28), &caches[ref], 22));
  }
  for (int i = 0; i < 3; ++i) EXPECT_LT(maxdiff(outs[0][i], outs[1][i]), 1e-10) << i;
  EXPECT_LT(maxdiff(caches[0].ssm, caches[1].ssm), 1e-10);
  EXPECT_LT(maxdiff(caches[0].conv, caches[1].conv), 1e-12);
}

TEST(FusedMamba, Fp32AndBf16HeaddimKernel) {
  // headdim 32 takes the fixed-size kernel; fp32 against the fp64 reference,
  // bf16 input against fp32 arithmetic on the same rounded input.
  torch::manual_seed(24);
  Mamba2 m(64, 16, 4, 2, 32, 64);
  randomise(m);
  auto x = torch::randn({2, 75, 64}), w = torch::randn({2, 75, 64});
  auto a = run(m, x, {}, w);
  m.to(torch::kDouble);
  auto b = run_reference(m, x.to(torch::kDouble), {}, w.to(torch::kDouble));
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LT(maxdiff(a[i], b[i]), 2e-4 * std::max(1.0, b[i].abs().max().item<double>())) << "tensor " << i;

  m.to(torch::kFloat);
  torch::NoGradGuard ng;
  auto zx = torch::randn({2, 9, m.in_proj->weight.size(0)}).to(at::kBFloat16);
  MambaDims dims{m.d_inner, m.d_state, m.nheads, m.headdim, m.d_conv};
  auto r16 = mamba_core(zx, m.conv1d->weight, m.conv1d->bias, m.dt_bias, m.A_log, m.D, m.norm->weight, dims);
  auto r32 = mamba_core(zx.to(at::kFloat), m.conv1d->weight, m.conv1d->bias, m.dt_bias, m.A_log, m.D,
                        m.norm->weight, dims);
  EXPECT_EQ(r16.g.scalar_type(), at::kFloat);
  EXPECT_LT(maxdiff(r16.g, r32.g), 1e-5);
  EXPECT_LT(maxdiff(r16.state, r32.state), 1e-5);
}

TEST(Gradcheck, MambaCoreFp64) {
  torch::manual_seed(25);
  // H = 2, P = 2, N = 2, K = 3; L = 35 crosses a state checkpoint.
  MambaDims dims{4, 2, 2, 2, 3};
  const int64_t Cd = 8, W = 2 * 4 + 2 * 2 + 2;
  auto lengths = torch::tensor({35, 30}, at::kLong);
  auto f = [&](const std::vector<at::Tensor>& in) {
    return mamba_core(in[0], in[1], in[2], in[3], in[4], in[5], in[6], dims, lengths).g;
  };
  std::vector<at::Tensor> in{torch::randn({2, 35, W}),       torch::randn({Cd, 1, 3}) * 0.5,
                             torch::randn({Cd}) * 0.5,       torch::randn({2}) - 1.0,
                             torch::rand({2}) * 2.0,         torch::randn({2}),
                             torch::rand({4}) + 0.5};
  EXPECT_LT(gradtest::gradcheck_max_error(f, in), 1e-7);
}

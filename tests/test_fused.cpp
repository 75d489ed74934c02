// Fused kernels equal their tensor-op references and pass fp64 gradcheck.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gradcheck.h"
#include "kernels/cpu/dense/norm_act.h"
#include "model/layers/norm.h"

using namespace dynarch;

TEST(Fused, SwiGLUEqualsReference) {
  torch::manual_seed(0);
  auto h = torch::randn({3, 5, 2 * 37}).requires_grad_(true);
  auto a = swiglu_fused(h), b = swiglu_reference(h);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-6);
  auto w = torch::randn_like(a);
  auto ga = torch::autograd::grad({(a * w).sum()}, {h})[0], gb = torch::autograd::grad({(b * w).sum()}, {h})[0];
  EXPECT_LT((ga - gb).abs().max().item<double>(), 1e-5);
  // bf16 in, bf16 out, fp32 arithmetic inside
  auto hb = h.detach().to(at::kBFloat16);
  auto ab = swiglu_fused(hb);
  EXPECT_EQ(ab.scalar_type(), at::kBFloat16);
  EXPECT_LT((ab.to(at::kFloat) - swiglu_reference(hb.to(at::kFloat))).abs().max().item<double>(), 0.05);
}

TEST(Fused, RMSNormEqualsReference) {
  torch::manual_seed(1);
  auto x = (torch::randn({4, 7, 48}) * 3).requires_grad_(true);
  auto w = (torch::rand({48}) + 0.5).requires_grad_(true);
  auto a = rms_norm_fused(x, w), b = rms_norm(x, w);
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  auto g = torch::randn_like(a);
  auto ga = torch::autograd::grad({(a * g).sum()}, {x, w}), gb = torch::autograd::grad({(b * g).sum()}, {x, w});
  EXPECT_LT((ga[0] - gb[0]).abs().max().item<double>(), 1e-5);
  EXPECT_LT((ga[1] - gb[1]).abs().max().item<double>(), 1e-4);
  // bf16 input: fp32 statistics and fp32 output
  auto ab = rms_norm_fused(x.detach().to(at::kBFloat16), w.detach());
  EXPECT_EQ(ab.scalar_type(), at::kFloat);
  EXPECT_LT((ab - b.detach()).abs().max().item<double>(), 0.05);
}

TEST(Gradcheck, SwiGLUFp64) {
  torch::manual_seed(2);
  auto f = [](const std::vector<at::Tensor>& in) { return swiglu_fused(in[0]); };
  EXPECT_LT(gradtest::gradcheck_max_error(f, {torch::randn({3, 2 * 5}) * 2}), 1e-7);
}

TEST(Gradcheck, RMSNormFp64) {
  torch::manual_seed(3);
  auto f = [](const std::vector<at::Tensor>& in) { return rms_norm_fused(in[0], in[1]); };
  EXPECT_LT(gradtest::gradcheck_max_error(f, {torch::randn({4, 6}), torch::rand({6}) + 0.5}), 1e-7);
}

#include "kernels/cpu/gemm/bmm.h"

TEST(Fused, BmmSmallEqualsMatmulWithBroadcast) {
  torch::manual_seed(4);
  auto A = torch::randn({2, 1, 3, 5, 7}).requires_grad_(true), B = torch::randn({2, 4, 3, 7, 6}).requires_grad_(true);
  auto a = bmm_small(A, B), b = torch::matmul(A, B);
  EXPECT_EQ(a.sizes(), b.sizes());
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  auto g = torch::randn_like(a);
  auto ga = torch::autograd::grad({(a * g).sum()}, {A, B}), gb = torch::autograd::grad({(b * g).sum()}, {A, B});
  EXPECT_LT((ga[0] - gb[0]).abs().max().item<double>(), 1e-4);
  EXPECT_LT((ga[1] - gb[1]).abs().max().item<double>(), 1e-4);
  // transposed (non-contiguous) inputs
  auto At = torch::randn({3, 7, 5}).transpose(1, 2);
  EXPECT_LT((bmm_small(At, B[0][0]) - torch::matmul(At, B[0][0])).abs().max().item<double>(), 1e-5);
}

TEST(Gradcheck, BmmSmallFp64) {
  torch::manual_seed(5);
  auto f = [](const std::vector<at::Tensor>& in) { return bmm_small(in[0], in[1]); };
  EXPECT_LT(gradtest::gradcheck_max_error(f, {torch::randn({2, 3, 4}), torch::randn({2, 4, 2})}), 1e-7);
}

TEST(Fused, GatedNormEqualsReference) {
  torch::manual_seed(6);
  auto y = torch::randn({3, 4, 40}).requires_grad_(true), z = (torch::randn({3, 4, 40}) * 2).requires_grad_(true);
  auto w = (torch::rand({40}) + 0.5).requires_grad_(true);
  auto a = gated_rms_norm_fused(y, z, w), b = gated_rms_norm(y, z, w);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  auto g = torch::randn_like(a);
  auto ga = torch::autograd::grad({(a * g).sum()}, {y, z, w}), gb = torch::autograd::grad({(b * g).sum()}, {y, z, w});
  for (int i = 0; i < 3; ++i) EXPECT_LT((ga[i] - gb[i]).abs().max().item<double>(), 1e-4) << i;
  // bf16 gate
  auto zb = z.detach().to(at::kBFloat16);
  EXPECT_LT((gated_rms_norm_fused(y.detach(), zb, w.detach()) - gated_rms_norm(y.detach(), zb.to(at::kFloat), w.detach()))
                .abs().max().item<double>(), 1e-5);
}

TEST(Gradcheck, GatedNormFp64) {
  torch::manual_seed(7);
  auto f = [](const std::vector<at::Tensor>& in) { return gated_rms_norm_fused(in[0], in[1], in[2]); };
  EXPECT_LT(gradtest::gradcheck_max_error(f, {torch::randn({3, 5}), torch::randn({3, 5}), torch::rand({5}) + 0.5}),
            1e-7);
}

// The AVX-512 skinny GEMMs of the fused mHC input (skinny_gemm.h) and the
// 32-register n = 4 stream kernels (stream_rows.h) against plain loops, and the
// fused op on both paths. On hosts without AVX-512 the kernel checks skip and
// the op-level checks compare BLAS with BLAS.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <optional>

#include "core/forward_context.h"
#include "kernels/cpu/streams/mhc_input.h"
#include "kernels/cpu/gemm/skinny_gemm.h"
#include "kernels/cpu/streams/stream_rows.h"

using namespace dynarch;

namespace {
std::vector<float> rnd(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  auto t = torch::randn({n});
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + n);
}
double maxdiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}
}  // namespace

TEST(SkinnyGemm, Availability) {
  EXPECT_FALSE(skinny_gemm_available(0));
  EXPECT_FALSE(skinny_gemm_available(33));  // n = 5: BLAS
  BlasSkinnyScope blas;
  EXPECT_FALSE(skinny_gemm_available(24));
}

// Row counts around the 8-row tiles, widths around the 32-column chunks, and
// the output counts of n = 1..4 plus the limits of one and two vectors.
TEST(SkinnyGemm, KernelsEqualReference) {
  if (!skinny_gemm_available(24)) GTEST_SKIP() << "no AVX-512 on this host: the BLAS path is used";
  int cases = 0;
  for (int64_t M : {1, 7, 8, 13, 16})
    for (int64_t nD : {5, 32, 37, 100})
      for (int64_t K : {3, 8, 15, 16, 17, 24, 32}) {
        auto X = rnd(M * nD, 1), phi = rnd(K * nD, 2), Gr = rnd(M * K, 3), dX0 = rnd(M * nD, 4), dphi0 = rnd(K * nD, 5);
        std::vector<float> raw(M * K, 9.f), raw_ref(M * K), dX = dX0, dX_ref = dX0, dphi = dphi0, dphi_ref = dphi0;
        PackedPhi p;
        pack_phi(phi.data(), K, nD, p);
        skinny_project(M, X.data(), p, raw.data());
        skinny_project_reference(M, nD, K, X.data(), phi.data(), raw_ref.data());
        skinny_expand_add(M, nD, K, Gr.data(), phi.data(), dX.data());
        skinny_expand_add_reference(M, nD, K, Gr.data(), phi.data(), dX_ref.data());
        skinny_dphi_add(M, nD, K, Gr.data(), X.data(), dphi.data());
        skinny_dphi_add_reference(M, nD, K, Gr.data(), X.data(), dphi_ref.data());
        const std::string at = "M " + std::to_string(M) + " nD " + std::to_string(nD) + " K " + std::to_string(K);
        EXPECT_LT(maxdiff(raw, raw_ref), 1e-4) << at;
        EXPECT_LT(maxdiff(dX, dX_ref), 1e-4) << at;
        EXPECT_LT(maxdiff(dphi, dphi_ref), 1e-4) << at;
        ++cases;
      }
  EXPECT_EQ(cases, 140);
}

// The fused op's outputs and gradients do not depend on the GEMM path.
TEST(SkinnyGemm, FusedOpSameOnBothPaths) {
  for (int64_t n : {2, 4}) {
    torch::manual_seed(30 + n);
    const int64_t T = 37, D = 37, K = n * n + 2 * n;
    std::vector<at::Tensor> in = {torch::randn({T, n, D}), torch::rand({T, n, n}) * 0.5, torch::rand({T, n}) * 2,
                                  torch::randn({T, D}), torch::randn({K, n * D}) * 0.2, torch::randn({K}),
                                  torch::tensor({0.8, 1.3, 0.6})};
    auto G = torch::randn({T, n, D}), Gu = torch::randn({T, D}), Gz = torch::randn({T, n, n});
    auto run = [&](bool blas) {
      std::optional<BlasSkinnyScope> scope;
      if (blas) scope.emplace();
      std::vector<at::Tensor> x;
      for (auto& t : in) x.push_back(t.clone().requires_grad_(true));
      auto m = mhc_merge_pre(x[0], x[1], x[2], x[3], x[4], x[5], x[6], 1e-6, 1e-6);
      auto loss = (m.X * G).sum() + (m.p.u * Gu).sum() + (m.p.Z * Gz).sum() + m.p.pre.sum() + m.p.post.sum();
      std::vector<at::Tensor> out = {m.X.detach(), m.p.u.detach(), m.p.Z.detach()};
      for (auto& g : torch::autograd::grad({loss}, x)) out.push_back(g);
      return out;
    };
    auto a = run(false), b = run(true);
    for (size_t i = 0; i < a.size(); ++i) {
      const double scale = std::max(1.0, b[i].abs().max().item<double>());
      EXPECT_LT((a[i] - b[i]).abs().max().item<double>() / scale, 1e-5) << "n " << n << " output/grad " << i;
    }
  }
}

// The n = 4 merge backward built for 32 vector registers (all 20 dot products
// in one pass) against the portable build of the same template.
TEST(StreamRows, WideMergeBackwardEqualsPortable) {
  if (!stream_rows_wide()) GTEST_SKIP() << "no AVX-512VL on this host";
  for (int64_t D : {7, 37, 64}) {
    const int64_t T = 3, n = 4;
    auto xp = rnd(T * n * D, 1), R = rnd(T * n * n, 2), post = rnd(T * n, 3), y = rnd(T * D, 4), G = rnd(T * n * D, 5);
    Merge<float> m{xp.data(), R.data(), post.data(), y.data()};
    std::vector<float> a[4] = {std::vector<float>(n * D), std::vector<float>(n * n), std::vector<float>(n),
                               std::vector<float>(D)};
    std::vector<float> b[4] = {a[0], a[1], a[2], a[3]};
    for (int64_t t = 0; t < T; ++t) {
      merge_token_backward_4f_wide(m, t, D, G.data() + t * n * D, a[0].data(), a[1].data(), a[2].data(), a[3].data());
      merge_token_backward_n<4, float, false>(m, t, D, G.data() + t * n * D, b[0].data(), b[1].data(), b[2].data(),
                                              b[3].data());
      for (int i = 0; i < 4; ++i) EXPECT_LT(maxdiff(a[i], b[i]), 1e-4) << "D " << D << " t " << t << " output " << i;
    }
    EXPECT_GT(std::abs(a[1][0]), 0.f);
  }
}

// The CUDA mHC sub-layer input kernels (src/kernels/cuda/streams/mhc_pre.cu),
// compiled by g++ with DYNARCH_CUDA_EMULATE and run on the host as in
// test_cuda_emulated.cpp, with the binding's GEMMs done by at::mm on the CPU:
// forward outputs and every gradient (X, phi, bias, alpha) in fp64 against
// autograd through mhc_pre_reference / mhc_project_reference. Built when the
// CUDA headers exist and the build is not the CUDA one.
#if DYNARCH_CUDA_EMULATED_TESTS
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda_test_util.h"

#include "kernels/cpu/streams/mhc_input.h"
#include "kernels/cpu/streams/stream_mix.h"

#define DYNARCH_CUDA_EMULATE 1
#include "kernels/cuda/streams/mhc_pre.cu"
#include "cuda_emulate_end.h"

using namespace dynarch;
using dynarch::testutil::rel;

namespace {

double* p(const at::Tensor& t) { return t.defined() && t.numel() ? t.data_ptr<double>() : nullptr; }

constexpr double kRmsEps = 1e-6, kPreEps = 1e-6;

// What the binding (kernels/cuda/streams/mhc_pre_cuda.cpp) keeps from the forward.
struct Fwd {
  at::Tensor u, pre, post, Z, raw, rho;
};

Fwd emu_forward(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha) {
  const cuda::MhcShape s{X.size(0), X.size(1), X.size(2)};
  auto o = X.options();
  Fwd f{torch::empty({s.T, s.D}, o), torch::empty({s.T, s.n}, o), torch::empty({s.T, s.n}, o),
        torch::empty({s.T, s.n, s.n}, o), at::mm(X.reshape({s.T, s.n * s.D}), phi.t()), torch::empty({s.T}, o)};
  EXPECT_EQ(cuda::mhc_pre_forward<double>(p(X), p(f.raw), p(bias), p(alpha), kRmsEps, kPreEps, p(f.rho), p(f.u),
                                          p(f.pre), p(f.post), p(f.Z), s, nullptr),
            cudaSuccess);
  return f;
}

// The binding's backward: the kernel, then the two GEMMs and the partial sums.
// Any of gu, gpre, gpost, gZ may be undefined (a zero gradient); returns dX, dphi, dbias, dalpha.
std::vector<at::Tensor> emu_backward(const Fwd& f, const at::Tensor& X, const at::Tensor& phi, const at::Tensor& alpha,
                                     const at::Tensor& gu, const at::Tensor& gpre, const at::Tensor& gpost,
                                     const at::Tensor& gZ, bool with_dX = true) {
  const cuda::MhcShape s{X.size(0), X.size(1), X.size(2)};
  const int64_t K = s.n * s.n + 2 * s.n;
  auto o = X.options();
  auto dX = with_dX ? torch::empty_like(X) : at::Tensor();
  auto draw = torch::empty({s.T, K}, o), dlogit = torch::empty({s.T, K}, o), da = torch::empty({s.T, 3}, o);
  EXPECT_EQ(cuda::mhc_pre_backward<double>(p(X), p(f.raw), p(f.rho), p(f.pre), p(f.post), p(alpha), p(gu), p(gpre),
                                           p(gpost), p(gZ), kPreEps, p(dX), p(draw), p(dlogit), p(da), s, nullptr),
            cudaSuccess);
  auto V = X.reshape({s.T, s.n * s.D});
  if (with_dX) dX.view({s.T, s.n * s.D}).addmm_(draw, phi);
  return {dX, at::mm(draw.t(), V), dlogit.sum(0), da.sum(0)};
}

struct Case {
  at::Tensor X, phi, bias, alpha;
};

Case random_case(int64_t T, int64_t n, int64_t D) {
  const int64_t K = n * n + 2 * n;
  auto o = at::TensorOptions().dtype(at::kDouble);
  return {torch::randn({T, n, D}, o), torch::randn({K, n * D}, o) * 0.2, torch::randn({K}, o),
          torch::tensor({0.8, 1.3, 0.6}, o)};
}

// Forward and all gradients of one case; `drop` zeroes (and passes as null) some
// output gradients: bit 0 gu, 1 gpre, 2 gpost, 3 gZ.
void check_case(int64_t T, int64_t n, int64_t D, int drop, const std::string& what) {
  auto c = random_case(T, n, D);
  std::vector<at::Tensor> in = {c.X, c.phi, c.bias, c.alpha};
  for (auto& t : in) t = t.clone().requires_grad_(true);
  auto ref = mhc_pre_reference(in[0], in[1], in[2], in[3], kRmsEps, kPreEps);
  auto f = emu_forward(c.X, c.phi, c.bias, c.alpha);
  const double tol = 1e-10;
  EXPECT_LT(rel(f.u, ref.u), tol) << what << ": u";
  EXPECT_LT(rel(f.pre, ref.pre), tol) << what << ": pre";
  EXPECT_LT(rel(f.post, ref.post), tol) << what << ": post";
  EXPECT_LT(rel(f.Z, ref.Z), tol) << what << ": Z";
  auto o = c.X.options();
  auto gu = torch::randn({T, D}, o), gpre = torch::randn({T, n}, o), gpost = torch::randn({T, n}, o);
  auto gZ = torch::randn({T, n, n}, o);
  at::Tensor* g[4] = {&gu, &gpre, &gpost, &gZ};
  at::Tensor loss = ref.u.sum() * 0;  // keeps the graph when every gradient is dropped
  const at::Tensor* outs[4] = {&ref.u, &ref.pre, &ref.post, &ref.Z};
  for (int i = 0; i < 4; ++i) {
    if (drop & (1 << i))
      *g[i] = at::Tensor();
    else
      loss = loss + (*outs[i] * *g[i]).sum();
  }
  auto want = torch::autograd::grad({loss}, in, {}, false, false, /*allow_unused=*/true);
  auto got = emu_backward(f, c.X, c.phi, c.alpha, gu, gpre, gpost, gZ);
  const char* names[4] = {"dX", "dphi", "dbias", "dalpha"};
  for (int i = 0; i < 4; ++i) {
    auto w = want[i].defined() ? want[i] : torch::zeros_like(in[i]);
    EXPECT_LT((got[i] - w).abs().max().item<double>() / std::max(1.0, w.abs().max().item<double>()), tol)
        << what << ": " << names[i];
  }
  // Without dX the kernel still gives draw (phi's gradient).
  auto no_dx = emu_backward(f, c.X, c.phi, c.alpha, gu, gpre, gpost, gZ, false);
  EXPECT_TRUE(torch::equal(no_dx[1], got[1])) << what;
}

}  // namespace

TEST(CudaEmulated, MhcPre) {
  torch::manual_seed(11);
  for (int64_t n : {1, 2, 4, 8})
    for (int64_t D : {5, 70})
      for (int64_t T : {1, 37})
        check_case(T, n, D, 0, "n=" + std::to_string(n) + " D=" + std::to_string(D) + " T=" + std::to_string(T));
}

TEST(CudaEmulated, MhcPreMissingGradients) {
  torch::manual_seed(12);
  // Only gu; only gZ; gpre + gpost; none of them.
  for (int drop : {0b1110, 0b0111, 0b1001, 0b1111})
    check_case(9, 4, 33, drop, "drop=" + std::to_string(drop));
}

TEST(CudaEmulated, MhcPreNoTokens) {
  auto c = random_case(0, 4, 8);
  auto f = emu_forward(c.X, c.phi, c.bias, c.alpha);
  EXPECT_EQ(f.u.size(0), 0);
  auto g = emu_backward(f, c.X, c.phi, c.alpha, torch::zeros({0, 8}, at::kDouble), {}, {}, {});
  EXPECT_TRUE(torch::equal(g[1], torch::zeros_like(c.phi)));
}

TEST(CudaEmulated, MhcProject) {
  torch::manual_seed(13);
  for (auto [T, n, D, K] : {std::array<int64_t, 4>{37, 4, 70, 24}, {1, 2, 5, 3}, {20, 1, 40, 40}}) {
    const std::string what = "T=" + std::to_string(T) + " n=" + std::to_string(n) + " K=" + std::to_string(K);
    auto X = torch::randn({T, n, D}, at::kDouble).requires_grad_(true);
    auto phi = (torch::randn({K, n * D}, at::kDouble) * 0.2).requires_grad_(true);
    auto ref = mhc_project_reference(X, phi, kRmsEps);
    const int64_t N = n * D;
    auto V = X.detach().reshape({T, N});
    auto raw = at::mm(V, phi.detach().t()), rho = torch::empty({T}, at::kDouble), m = torch::empty({T, K}, at::kDouble);
    ASSERT_EQ(cuda::mhc_project_forward<double>(p(V), p(raw), kRmsEps, p(rho), p(m), T, N, K, nullptr), cudaSuccess);
    EXPECT_LT(rel(m, ref), 1e-12) << what;
    auto G = torch::randn({T, K}, at::kDouble);
    auto want = torch::autograd::grad({(ref * G).sum()}, {X, phi});
    auto Gs = torch::empty({T, K}, at::kDouble), dV = torch::empty({T, N}, at::kDouble);
    ASSERT_EQ(cuda::mhc_project_backward<double>(p(V), p(raw), p(rho), p(G), p(Gs), p(dV), T, N, K, nullptr),
              cudaSuccess);
    dV.addmm_(Gs, phi.detach());
    EXPECT_LT(rel(dV.view({T, n, D}), want[0]), 1e-10) << what;
    EXPECT_LT(rel(at::mm(Gs.t(), V), want[1]), 1e-10) << what;
  }
}

#endif  // DYNARCH_CUDA_EMULATED_TESTS

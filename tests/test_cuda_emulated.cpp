// The CUDA kernels of src/kernels/cuda/, compiled by g++ with
// DYNARCH_CUDA_EMULATE and run on the host (kernels/cuda/grid.cuh: every block
// and thread of a launch in turn), against the CPU references: forward and
// backward of each launcher. This checks their indexing and arithmetic in the
// CPU build, where no GPU runs them; races and warp shuffles are left to the
// GPU tests (test_cuda_kernels.cpp). Built when the CUDA headers exist and the
// build is not the CUDA one (there the same kernels are nvcc's).
#if DYNARCH_CUDA_EMULATED_TESTS
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "cuda_test_util.h"

#include "kernels/cpu/chunk/ema_scan.h"
#include "kernels/cpu/mamba/causal_conv.h"
#include "kernels/cpu/streams/sinkhorn.h"
#include "kernels/cpu/streams/stream_mix.h"
#include "model/layers/mamba2.h"

#define DYNARCH_CUDA_EMULATE 1
#include "kernels/cuda/chunk/ema_scan.cu"
#include "kernels/cuda/mamba/causal_conv.cu"
#include "kernels/cuda/mamba/ssd_scan.cu"
#include "kernels/cuda/mamba/ssd_scan_backward.cu"
#include "kernels/cuda/streams/sinkhorn.cu"
#include "kernels/cuda/streams/stream_mix.cu"
#include "cuda_emulate_end.h"

using namespace dynarch;
using dynarch::testutil::rel;
using dynarch::testutil::starts_of;

namespace {

template <class C>
C* p(const at::Tensor& t) {
  return t.numel() ? t.data_ptr<C>() : nullptr;
}

// Gradients of sum(out * G) w.r.t. `in` through a reference op.
std::vector<at::Tensor> ref_grads(const at::Tensor& out, const at::Tensor& G, const std::vector<at::Tensor>& in) {
  return torch::autograd::grad({(out * G).sum()}, in);
}

template <class C>
void ema_case(at::ScalarType dt, double tol) {
  const int64_t B = 3, M = 17, D = 70;
  auto z = torch::randn({B, M, D}, dt).requires_grad_(true), P = torch::rand({B, M}, dt).requires_grad_(true);
  auto h0 = torch::randn({B, D}, dt).requires_grad_(true);
  auto ref = ema_scan_reference(z, P, h0);
  auto out = torch::empty_like(z.detach());
  ASSERT_EQ(cuda::ema_scan_forward<C>(p<C>(z), p<C>(P), p<C>(h0), p<C>(out), B, M, D, nullptr), cudaSuccess);
  EXPECT_LT(rel(out, ref), tol);
  auto G = torch::randn_like(out);
  auto g = ref_grads(ref, G, {z, P, h0});
  auto gz = torch::empty_like(out), gPd = torch::empty_like(out), gh0 = torch::empty_like(h0.detach());
  ASSERT_EQ(cuda::ema_scan_backward<C>(p<C>(z), p<C>(P), p<C>(h0), p<C>(out), p<C>(G), p<C>(gz), p<C>(gPd), p<C>(gh0),
                                       B, M, D, nullptr),
            cudaSuccess);
  EXPECT_LT(rel(gz, g[0]), tol);
  EXPECT_LT(rel(gPd.sum(-1), g[1]), tol);
  EXPECT_LT(rel(gh0, g[2]), tol);
}

}  // namespace

TEST(CudaEmulated, EmaScan) {
  torch::manual_seed(1);
  ema_case<float>(at::kFloat, 1e-5);
  ema_case<double>(at::kDouble, 1e-12);
}

TEST(CudaEmulated, CausalConv) {
  torch::manual_seed(2);
  for (auto [L, C, K, with_init] : {std::tuple<int64_t, int64_t, int64_t, bool>{37, 20, 4, true}, {9, 7, 2, false},
                                    {2, 5, 4, true}, {600, 3, 4, false}}) {
    const int64_t B = 2, W = C + 6;  // x: columns 3 .. 3 + C of a wider row, read in place
    auto row = torch::randn({B, L, W}, at::kDouble);
    auto x = row.narrow(2, 3, C).requires_grad_(false);
    auto xg = x.clone().requires_grad_(true);
    auto w = torch::randn({C, 1, K}, at::kDouble).requires_grad_(true), b = torch::randn({C}, at::kDouble).requires_grad_(true);
    auto init = with_init ? torch::randn({B, K - 1, C}, at::kDouble) : at::Tensor();
    auto ref = causal_conv1d_silu_reference(xg, w, b, init);
    const cuda::ConvShape s{B, L, C, K, x.stride(0), x.stride(1)};
    auto wk = w.detach().reshape({C, K}).contiguous();
    auto y = torch::empty({B, L, C}, at::kDouble);
    const double* pi = with_init ? init.data_ptr<double>() : nullptr;
    ASSERT_EQ((cuda::causal_conv_silu_forward<double, double>(x.data_ptr<double>(), p<double>(wk), p<double>(b), pi,
                                                              nullptr, p<double>(y), s, nullptr)),
              cudaSuccess);
    EXPECT_LT(rel(y, ref), 1e-12) << L;
    auto G = torch::randn({B, L, C}, at::kDouble);
    auto g = ref_grads(ref, G, {xg, w, b});
    auto dpre = torch::empty_like(G), gx = torch::empty_like(G);
    auto part = torch::zeros({cuda::conv_weight_segments(s), K + 1, C}, at::kDouble);
    ASSERT_EQ((cuda::causal_conv_silu_backward<double, double>(x.data_ptr<double>(), p<double>(wk), p<double>(b), pi,
                                                               nullptr, p<double>(G), p<double>(dpre), p<double>(gx),
                                                               p<double>(part), s, nullptr)),
              cudaSuccess);
    auto gs = part.sum(0);
    EXPECT_LT(rel(gx, g[0]), 1e-12) << L;
    EXPECT_LT(rel(gs.narrow(0, 0, K).t().reshape({C, 1, K}), g[1]), 1e-12) << L;
    EXPECT_LT(rel(gs.select(0, K), g[2]), 1e-12) << L;
  }
  // bf16 input, fp32 compute and output.
  auto xb = torch::randn({2, 11, 6}).to(at::kBFloat16);
  auto w = torch::randn({6, 4}), b = torch::randn({6});
  auto y = torch::empty({2, 11, 6});
  const cuda::ConvShape s{2, 11, 6, 4, 66, 6};
  ASSERT_EQ((cuda::causal_conv_silu_forward<__nv_bfloat16, float>(
                reinterpret_cast<const __nv_bfloat16*>(xb.data_ptr()), p<float>(w), p<float>(b), nullptr, nullptr,
                p<float>(y), s, nullptr)),
            cudaSuccess);
  EXPECT_LT(rel(y, causal_conv1d_silu_reference(xb.to(at::kFloat), w.view({6, 1, 4}), b)), 1e-6);
}

TEST(CudaEmulated, Sinkhorn) {
  torch::manual_seed(3);
  for (int n : {2, 3, 4, 8})
    for (bool v4 : {false, true}) {
      SinkhornOptions o;
      o.iters = 7;
      o.eps = 1e-3;
      o.eps_after_first = v4;
      const int64_t T = 40;
      auto Z = (torch::randn({T, n, n}, at::kDouble) * 2).requires_grad_(true);
      auto ref = sinkhorn_reference(Z, o);
      const cuda::SinkhornArgs a{T, n, o.iters, o.eps, v4};
      auto out = torch::empty_like(Z.detach());
      ASSERT_EQ(cuda::sinkhorn_forward<double>(p<double>(Z), p<double>(out), a, nullptr), cudaSuccess);
      EXPECT_LT(rel(out, ref), 1e-12) << n << " " << v4;
      auto G = torch::randn_like(out);
      auto g = ref_grads(ref, G, {Z});
      auto gZ = torch::empty_like(out), scratch = torch::empty({cuda::sinkhorn_scratch_elems(a)}, at::kDouble);
      ASSERT_EQ(cuda::sinkhorn_backward<double>(p<double>(Z), p<double>(G), p<double>(gZ), p<double>(scratch), a, nullptr),
                cudaSuccess);
      EXPECT_LT(rel(gZ, g[0]), 1e-10) << n << " " << v4;
    }
}

TEST(CudaEmulated, StreamMix) {
  torch::manual_seed(4);
  for (int64_t n : {1, 3, 4}) {
    const int64_t T = 7, D = 50;
    const cuda::MixShape s{T, n, D};
    auto X = torch::randn({T, n, D}, at::kDouble).requires_grad_(true);
    auto pre = torch::rand({T, n}, at::kDouble).requires_grad_(true), R = torch::rand({T, n, n}, at::kDouble).requires_grad_(true);
    auto post = torch::rand({T, n}, at::kDouble).requires_grad_(true), y = torch::randn({T, D}, at::kDouble).requires_grad_(true);
    // pre-mix
    auto u_ref = hc_pre_mix_reference(X, pre);
    auto u = torch::empty({T, D}, at::kDouble);
    ASSERT_EQ(cuda::pre_mix_forward<double>(p<double>(X), p<double>(pre), p<double>(u), s, nullptr), cudaSuccess);
    EXPECT_LT(rel(u, u_ref), 1e-12);
    auto Gu = torch::randn({T, D}, at::kDouble);
    auto gu = ref_grads(u_ref, Gu, {X, pre});
    auto gX = torch::empty({T, n, D}, at::kDouble), gp = torch::empty({T, n}, at::kDouble);
    ASSERT_EQ(cuda::pre_mix_backward<double>(p<double>(X), p<double>(pre), p<double>(Gu), p<double>(gX), p<double>(gp), s,
                                             nullptr),
              cudaSuccess);
    EXPECT_LT(rel(gX, gu[0]), 1e-12) << n;
    EXPECT_LT(rel(gp, gu[1]), 1e-12) << n;
    // post + res
    auto o_ref = hc_post_res_reference(X, R, post, y);
    auto o = torch::empty({T, n, D}, at::kDouble);
    ASSERT_EQ(cuda::post_res_forward<double>(p<double>(X), p<double>(R), p<double>(post), p<double>(y), p<double>(o), s,
                                             nullptr),
              cudaSuccess);
    EXPECT_LT(rel(o, o_ref), 1e-12);
    auto Go = torch::randn({T, n, D}, at::kDouble);
    auto go = ref_grads(o_ref, Go, {X, R, post, y});
    auto gX2 = torch::empty_like(gX), gR = torch::empty({T, n, n}, at::kDouble), gpost = torch::empty({T, n}, at::kDouble);
    auto gy = torch::empty({T, D}, at::kDouble);
    ASSERT_EQ(cuda::post_res_backward<double>(p<double>(X), p<double>(R), p<double>(post), p<double>(y), p<double>(Go),
                                              p<double>(gX2), p<double>(gR), p<double>(gpost), p<double>(gy), s, nullptr),
              cudaSuccess);
    EXPECT_LT(rel(gX2, go[0]), 1e-12) << n;
    EXPECT_LT(rel(gR, go[1]), 1e-12) << n;
    EXPECT_LT(rel(gpost, go[2]), 1e-12) << n;
    EXPECT_LT(rel(gy, go[3]), 1e-12) << n;
  }
}

TEST(CudaEmulated, SsdChunkedForward) {
  torch::manual_seed(5);
  for (int64_t L : {5, 64, 100})
    for (bool with_init : {false, true}) {
      const int64_t B = 2, H = 3, P = 8, N = 16, Q = 32;
      auto o = at::TensorOptions().dtype(at::kDouble);
      auto x = torch::randn({B, L, H, P}, o), dt = torch::rand({B, L, H}, o) * 0.5;
      auto a = -torch::rand({H}, o) * 4 - 0.5, Bm = torch::randn({B, L, N}, o), Cm = torch::randn({B, L, N}, o);
      auto init = with_init ? torch::randn({B, H, P, N}, o) : at::Tensor();
      auto ref = ssd_sequential(x, dt, a, Bm, Cm, init);
      const cuda::SsdShape s = cuda::make_ssd_shape(B, L, H, P, N, Q);
      auto y = torch::empty_like(x), fin = torch::empty({B, H, P, N}, o);
      auto scratch = torch::empty({cuda::ssd_scratch_elems(s)}, o);
      ASSERT_EQ(cuda::ssd_forward_chunked<double>(p<double>(x), p<double>(dt), p<double>(a), p<double>(Bm), p<double>(Cm),
                                                  with_init ? p<double>(init) : nullptr, nullptr, p<double>(y), p<double>(fin),
                                                  p<double>(scratch), s, nullptr),
                cudaSuccess);
      EXPECT_LT(rel(y, ref.y), 1e-12) << L << " " << with_init;
      EXPECT_LT(rel(fin, ref.state), 1e-12) << L << " " << with_init;
    }
}

namespace {

// One backward case against autograd through ssd_sequential: the gradients of
// <gy, y> + <g_final, final state>; gy or g_final may be absent (zeros).
// `skip` leaves dBm, dinit and dx unrequested (null) and checks the rest.
// st: (B, L) sequence starts of packed rows, or undefined; kernels: the
// launcher's choice of naive or tiled kernels. Returns the largest relative error.
double ssd_backward_case(int64_t B, int64_t L, int64_t H, int64_t P, int64_t N, int64_t Q, bool with_init,
                         bool with_gy, bool with_gf, bool skip = false, const at::Tensor& st = {},
                         cuda::SsdKernels kernels = cuda::SsdKernels::automatic) {
  const std::string what = "L=" + std::to_string(L) + " Q=" + std::to_string(Q) + " init=" +
                           std::to_string(with_init) + " gy=" + std::to_string(with_gy) +
                           " g_final=" + std::to_string(with_gf) + " skip=" + std::to_string(skip) +
                           " starts=" + std::to_string(st.defined()) + " kernels=" + std::to_string((int)kernels);
  auto o = at::TensorOptions().dtype(at::kDouble);
  auto x = torch::randn({B, L, H, P}, o), dt = torch::rand({B, L, H}, o) * 0.5 + 0.05;
  auto a = -torch::rand({H}, o) * 2 - 0.3, Bm = torch::randn({B, L, N}, o), Cm = torch::randn({B, L, N}, o);
  auto init = with_init ? torch::randn({B, H, P, N}, o) : at::Tensor();
  auto gy = with_gy ? torch::randn({B, L, H, P}, o) : at::Tensor();
  auto gf = with_gf ? torch::randn({B, H, P, N}, o) : at::Tensor();
  std::vector<at::Tensor> in;
  for (const auto& t : {x, dt, a, Bm, Cm}) in.push_back(t.clone().requires_grad_(true));
  if (with_init) in.push_back(init.clone().requires_grad_(true));
  auto ref = ssd_sequential(in[0], in[1], in[2], in[3], in[4], with_init ? in[5] : at::Tensor(), st);
  auto loss = torch::zeros({}, o);
  if (with_gy) loss = loss + (ref.y * gy).sum();
  if (with_gf) loss = loss + (ref.state * gf).sum();
  std::vector<at::Tensor> g;
  if (with_gy || with_gf)  // Cm is unused without gy: allow_unused, zeros for it
    g = torch::autograd::grad({loss}, in, {}, false, false, /*allow_unused=*/true);
  else
    g.resize(in.size());
  for (size_t i = 0; i < in.size(); ++i)
    if (!g[i].defined()) g[i] = torch::zeros_like(in[i]);

  cuda::SsdShape s = cuda::make_ssd_shape(B, L, H, P, N, Q);
  s.kernels = kernels;
  auto dx = torch::full_like(x, 7.0), ddt = torch::full_like(dt, 7.0), da = torch::full_like(a, 7.0);
  auto dB = torch::full_like(Bm, 7.0), dC = torch::full_like(Cm, 7.0), dinit = torch::full({B, H, P, N}, 7.0, o);
  auto scratch = torch::full({cuda::ssd_backward_scratch_elems(s)}, 7.0, o);
  EXPECT_EQ(cuda::ssd_backward_chunked<double>(
                p<double>(x), p<double>(dt), p<double>(a), p<double>(Bm), p<double>(Cm),
                with_init ? p<double>(init) : nullptr, st.defined() ? st.data_ptr<int64_t>() : nullptr,
                with_gy ? p<double>(gy) : nullptr,
                with_gf ? p<double>(gf) : nullptr, skip ? nullptr : p<double>(dx), p<double>(ddt), p<double>(da),
                skip ? nullptr : p<double>(dB), p<double>(dC), skip ? nullptr : p<double>(dinit), p<double>(scratch),
                s, nullptr),
            cudaSuccess)
      << what;
  const double tol = 1e-10;
  double worst = 0;
  auto expect_close = [&](const at::Tensor& got, const at::Tensor& want, const char* name) {
    const double e = rel(got, want);
    EXPECT_LT(e, tol) << what << ": " << name;
    worst = std::max(worst, e);
  };
  expect_close(ddt, g[1], "ddt");
  expect_close(da, g[2], "da");
  expect_close(dC, g[4], "dCm");
  if (skip) {  // not requested: left as they were
    EXPECT_TRUE(torch::all(dx == 7.0).item<bool>()) << what;
    EXPECT_TRUE(torch::all(dB == 7.0).item<bool>()) << what;
    EXPECT_TRUE(torch::all(dinit == 7.0).item<bool>()) << what;
    return worst;
  }
  expect_close(dx, g[0], "dx");
  expect_close(dB, g[3], "dBm");
  if (with_init) {
    expect_close(dinit, g[5], "dinit");
  } else {  // the gradient an initial state would get: autograd through a zero one
    auto z = torch::zeros({B, H, P, N}, o).requires_grad_(true);
    auto r0 = ssd_sequential(x, dt, a, Bm, Cm, z, st);
    auto l0 = torch::zeros({}, o);
    if (with_gy) l0 = l0 + (r0.y * gy).sum();
    if (with_gf) l0 = l0 + (r0.state * gf).sum();
    auto gz = with_gy || with_gf ? torch::autograd::grad({l0}, {z})[0] : torch::zeros_like(z);
    expect_close(dinit, gz, "dinit (no init)");
  }
  return worst;
}

}  // namespace

TEST(CudaEmulated, SsdChunkedBackward) {
  torch::manual_seed(6);
  // (L, Q): partial last chunk, Q = 1, Q > L, Q = L, several whole chunks.
  for (auto [L, Q] : {std::pair<int64_t, int64_t>{37, 8}, {6, 1}, {10, 16}, {12, 12}, {24, 6}})
    for (bool with_init : {false, true})
      for (auto [gy, gf] : {std::pair<bool, bool>{true, false}, {false, true}, {true, true}})
        ssd_backward_case(2, L, 3, 4, 5, Q, with_init, gy, gf);
  ssd_backward_case(2, 21, 2, 3, 4, 8, true, true, true, /*skip=*/true);
  ssd_backward_case(1, 5, 2, 3, 4, 2, false, false, false);  // no upstream gradient: all zero
}

namespace {

// Packed rows: the scan with sequence starts (a state reset at each) against
// ssd_sequential with the same starts, forward and backward, with the given
// kernels. Q = 4: starts inside chunks, at chunk edges, length-1 sequences,
// one sequence over three chunks, a partial last chunk; Q = 1; Q > L.
void ssd_packed_rows(cuda::SsdKernels kernels, const char* name) {
  torch::manual_seed(7);
  const std::vector<std::pair<int64_t, std::vector<std::vector<int64_t>>>> cases{
      {4, {{3, 5, 1, 1, 6}, {13, 3}}}, {4, {{4, 4, 1, 9}, {1, 1, 16}}}, {1, {{2, 1, 3}, {6}}}, {32, {{4, 6}, {1, 9}}}};
  double fwd = 0, bwd = 0;
  for (const auto& [Q, rows] : cases) {
    const auto st = starts_of(rows);
    const int64_t B = st.size(0), L = st.size(1), H = 3, P = 4, N = 5;
    for (bool with_init : {false, true}) {
      auto o = at::TensorOptions().dtype(at::kDouble);
      auto x = torch::randn({B, L, H, P}, o), dt = torch::rand({B, L, H}, o) * 0.5 + 0.05;
      auto a = -torch::rand({H}, o) * 2 - 0.3, Bm = torch::randn({B, L, N}, o), Cm = torch::randn({B, L, N}, o);
      auto init = with_init ? torch::randn({B, H, P, N}, o) : at::Tensor();
      auto ref = ssd_sequential(x, dt, a, Bm, Cm, init, st);
      cuda::SsdShape s = cuda::make_ssd_shape(B, L, H, P, N, Q);
      s.kernels = kernels;
      auto y = torch::empty_like(x), fin = torch::empty({B, H, P, N}, o);
      auto scratch = torch::empty({cuda::ssd_scratch_elems(s)}, o);
      ASSERT_EQ(cuda::ssd_forward_chunked<double>(p<double>(x), p<double>(dt), p<double>(a), p<double>(Bm),
                                                  p<double>(Cm), with_init ? p<double>(init) : nullptr,
                                                  st.data_ptr<int64_t>(), p<double>(y), p<double>(fin),
                                                  p<double>(scratch), s, nullptr),
                cudaSuccess);
      const std::string what = std::string(name) + " Q=" + std::to_string(Q) + " L=" + std::to_string(L) +
                               " init=" + std::to_string(with_init);
      EXPECT_LT(rel(y, ref.y), 1e-12) << what;
      EXPECT_LT(rel(fin, ref.state), 1e-12) << what;
      fwd = std::max({fwd, rel(y, ref.y), rel(fin, ref.state)});
      for (auto [gy, gf] : {std::pair<bool, bool>{true, false}, {false, true}, {true, true}})
        bwd = std::max(bwd, ssd_backward_case(B, L, H, P, N, Q, with_init, gy, gf, false, st, kernels));
    }
  }
  bwd = std::max(bwd, ssd_backward_case(2, 16, 2, 3, 4, 4, true, true, true, /*skip=*/true,
                                        starts_of({{3, 5, 1, 1, 6}, {13, 3}}), kernels));
  std::printf("[ max rel error ] emulated CUDA SSD (%s kernels) with starts vs ssd_sequential: forward %.2e, "
              "backward %.2e\n",
              name, fwd, bwd);
}

}  // namespace

// The naive kernels and the tiled ones (forced: P, N are off the 16 grid; more
// tiled cases in test_cuda_emulated_ssd.cpp).
TEST(CudaEmulated, SsdChunkedPackedRows) { ssd_packed_rows(cuda::SsdKernels::naive, "naive"); }
TEST(CudaEmulated, SsdChunkedPackedRowsTiled) { ssd_packed_rows(cuda::SsdKernels::tiled, "tiled"); }

// The conv with sequence starts against the reference with the same starts:
// output, dx, dweight, dbias; init's rows feed the first sequence only.
TEST(CudaEmulated, CausalConvPackedRows) {
  torch::manual_seed(8);
  double worst = 0;
  for (const auto& rows : {std::vector<std::vector<int64_t>>{{3, 5, 1, 1, 6}, {1, 2, 13}}, {{2, 1, 1}, {4}}})
    for (int64_t K : {4, 2})
      for (bool with_init : {false, true}) {
        const auto st = starts_of(rows);
        const int64_t B = st.size(0), L = st.size(1), C = 6;
        auto o = at::TensorOptions().dtype(at::kDouble);
        auto x = torch::randn({B, L, C}, o), xg = x.clone().requires_grad_(true);
        auto w = torch::randn({C, 1, K}, o).requires_grad_(true), b = torch::randn({C}, o).requires_grad_(true);
        auto init = with_init ? torch::randn({B, K - 1, C}, o) : at::Tensor();
        auto ref = causal_conv1d_silu_reference(xg, w, b, init, st);
        const cuda::ConvShape s{B, L, C, K, x.stride(0), x.stride(1)};
        auto wk = w.detach().reshape({C, K}).contiguous();
        const double* pi = with_init ? init.data_ptr<double>() : nullptr;
        const int64_t* ps = st.data_ptr<int64_t>();
        auto y = torch::empty({B, L, C}, o);
        ASSERT_EQ((cuda::causal_conv_silu_forward<double, double>(p<double>(x), p<double>(wk), p<double>(b), pi, ps,
                                                                  p<double>(y), s, nullptr)),
                  cudaSuccess);
        auto G = torch::randn({B, L, C}, o);
        auto g = ref_grads(ref, G, {xg, w, b});
        auto dpre = torch::empty_like(G), gx = torch::empty_like(G);
        auto part = torch::zeros({cuda::conv_weight_segments(s), K + 1, C}, o);
        ASSERT_EQ((cuda::causal_conv_silu_backward<double, double>(p<double>(x), p<double>(wk), p<double>(b), pi, ps,
                                                                   p<double>(G), p<double>(dpre), p<double>(gx),
                                                                   p<double>(part), s, nullptr)),
                  cudaSuccess);
        auto gs = part.sum(0);
        const double e = std::max({rel(y, ref), rel(gx, g[0]), rel(gs.narrow(0, 0, K).t().reshape({C, 1, K}), g[1]),
                                   rel(gs.select(0, K), g[2])});
        EXPECT_LT(e, 1e-12) << "L=" << L << " K=" << K << " init=" << with_init;
        worst = std::max(worst, e);
      }
  std::printf("[ max rel error ] emulated CUDA conv with starts vs reference: %.2e\n", worst);
}

#endif  // DYNARCH_CUDA_EMULATED_TESTS

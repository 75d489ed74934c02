// CUDA kernels (src/kernels/cuda/) against their CPU references: outputs and
// gradients at fp32 (<= 1e-4 relative), fp64 gradcheck on the device, the
// hook of each CPU op reaching its binding, bad input. Every CUDA test skips
// when no GPU is visible (always in the CPU build); the conv reference, which
// is new, is also checked on the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda_test_util.h"

#include "expect_error.h"
#include "gradcheck.h"
#include "kernels/cpu/chunk/ema_scan.h"
#include "kernels/cpu/mamba/causal_conv.h"
#include "kernels/cpu/streams/sinkhorn.h"
#include "kernels/cpu/streams/stream_mix.h"
#include "model/layers/mamba2.h"
#include "model/layers/packing.h"

#if DYNARCH_CUDA
#include "kernels/cuda/chunk/ema_scan_cuda.h"
#include "kernels/cuda/mamba/causal_conv_cuda.h"
#include "kernels/cuda/mamba/ssd_scan_cuda.h"
#include "kernels/cuda/streams/sinkhorn_cuda.h"
#include "kernels/cuda/streams/stream_mix_cuda.h"
#endif

using namespace dynarch;
using dynarch::testutil::rel;
using dynarch::testutil::starts_of;
using testutil::expect_error;

namespace {

using Op = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// op on CUDA copies of `in` vs ref on CPU copies: the output and the gradients
// of sum(out * w) for the first `ngrad` inputs (all by default), relative to
// the reference's largest value.
void expect_cuda_matches(const Op& op, const Op& ref, const std::vector<at::Tensor>& in, double tol,
                         const std::string& what, size_t ngrad = SIZE_MAX) {
  ngrad = std::min(ngrad, in.size());
  std::vector<at::Tensor> dev, cpu;
  for (size_t i = 0; i < in.size(); ++i) {
    dev.push_back(in[i].detach().to(at::kCUDA).requires_grad_(i < ngrad));
    cpu.push_back(in[i].detach().clone().requires_grad_(i < ngrad));
  }
  auto a = op(dev), b = ref(cpu);
  ASSERT_TRUE(a.is_cuda()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_LT(rel(a, b), tol) << what << ": output";
  auto w = torch::randn(b.sizes(), b.options().requires_grad(false));
  auto ga = torch::autograd::grad({(a * w.to(a.device(), a.scalar_type())).sum()},
                                  std::vector<at::Tensor>(dev.begin(), dev.begin() + ngrad));
  auto gb = torch::autograd::grad({(b * w).sum()}, std::vector<at::Tensor>(cpu.begin(), cpu.begin() + ngrad));
  for (size_t i = 0; i < ngrad; ++i) EXPECT_LT(rel(ga[i], gb[i]), tol) << what << ": gradient of input " << i;
}

// gradcheck on the device: inputs go to CUDA as fp64.
double cuda_gradcheck(const Op& op, std::vector<at::Tensor> in) {
  for (auto& x : in) x = x.to(at::kCUDA);
  return gradtest::gradcheck_max_error(op, in);
}

}  // namespace

// ---- EMA dechunk scan (hnet.md §4) ----

TEST(CudaEma, MatchesReference) {
  REQUIRE_CUDA();
  torch::manual_seed(1);
  Op op = [](const std::vector<at::Tensor>& v) { return ema_scan(v[0], torch::sigmoid(v[1]), v[2]); };
  Op ref = [](const std::vector<at::Tensor>& v) { return ema_scan_reference(v[0], torch::sigmoid(v[1]), v[2]); };
  for (auto shape : {std::vector<int64_t>{3, 17, 70}, {1, 1, 5}, {2, 300, 1030}})
    expect_cuda_matches(op, ref,
                        {torch::randn(shape), torch::randn({shape[0], shape[1]}), torch::randn({shape[0], shape[2]})},
                        1e-4, "ema " + c10::str(shape));
  // Without h0, and bf16 z (computed in fp32, gradient back in bf16).
  auto z = torch::randn({2, 9, 33}), P = torch::rand({2, 9});
  EXPECT_LT(rel(ema_scan(z.cuda(), P.cuda()), ema_scan_reference(z, P)), 1e-5);
  auto zb = z.to(at::kBFloat16);
  EXPECT_LT(rel(ema_scan(zb.cuda(), P.cuda()), ema_scan_reference(zb.to(at::kFloat), P)), 1e-5);
}

TEST(CudaEma, GradcheckFp64AndHook) {
  REQUIRE_CUDA();
  torch::manual_seed(2);
  Op f = [](const std::vector<at::Tensor>& in) { return ema_scan(in[0], torch::sigmoid(in[1]), in[2]); };
  EXPECT_LT(cuda_gradcheck(f, {torch::randn({2, 5, 3}), torch::randn({2, 5}), torch::randn({2, 3})}), 1e-7);
#if DYNARCH_CUDA
  auto z = torch::randn({2, 6, 40}, at::kCUDA), P = torch::rand({2, 6}, at::kCUDA),
       h0 = torch::randn({2, 40}, at::kCUDA);
  EXPECT_TRUE(torch::equal(ema_scan(z, P, h0), cuda::ema_scan(z, P, h0)));  // the op's hook reaches the kernel
  expect_error([&] { cuda::ema_scan(z, P.cpu(), h0); }, "ema_scan: P is on cpu");
  expect_error([&] { cuda::ema_scan(z, P, h0.narrow(1, 0, 3)); }, "h0 must have shape");
#endif
}

// ---- causal depthwise conv + SiLU (hnet.md §11.2) ----

TEST(CausalConv, ReferenceEqualsLoop) {
  // y[t, c] = silu(b[c] + sum_k w[c, k] x[t - K + 1 + k, c]) with init rows before t = 0.
  torch::manual_seed(3);
  const int64_t B = 2, L = 6, C = 3, K = 4;
  auto x = torch::randn({B, L, C}, at::kDouble), w = torch::randn({C, 1, K}, at::kDouble);
  auto b = torch::randn({C}, at::kDouble), init = torch::randn({B, K - 1, C}, at::kDouble);
  for (bool with_init : {false, true}) {
    auto y = causal_conv1d_silu(x, w, b, with_init ? init : at::Tensor());
    ASSERT_EQ(y.sizes(), x.sizes());
    for (int64_t r = 0; r < B; ++r)
      for (int64_t t = 0; t < L; ++t)
        for (int64_t c = 0; c < C; ++c) {
          double acc = b[c].item<double>();
          for (int64_t k = 0; k < K; ++k) {
            const int64_t src = t - K + 1 + k;
            const double in =
                src >= 0 ? x[r][src][c].item<double>() : (with_init ? init[r][K - 1 + src][c].item<double>() : 0.0);
            acc += w[c][0][k].item<double>() * in;
          }
          EXPECT_NEAR(y[r][t][c].item<double>(), acc / (1 + std::exp(-acc)), 1e-12) << r << " " << t << " " << c;
        }
  }
}

TEST(CudaConv, MatchesReference) {
  REQUIRE_CUDA();
  torch::manual_seed(4);
  Op op = [](const std::vector<at::Tensor>& v) { return causal_conv1d_silu(v[0], v[1], v[2], v[3]); };
  Op ref = [](const std::vector<at::Tensor>& v) { return causal_conv1d_silu_reference(v[0], v[1], v[2], v[3]); };
  for (auto [B, L, C, K] : {std::array<int64_t, 4>{2, 37, 20, 4}, {3, 700, 288, 4}, {1, 2, 5, 4}, {2, 9, 7, 2}})
    expect_cuda_matches(
        op, ref,
        {torch::randn({B, L, C}), torch::randn({C, 1, K}) * 0.5, torch::randn({C}), torch::randn({B, K - 1, C})}, 1e-4,
        "conv " + std::to_string(L) + "x" + std::to_string(C), 3);  // init: no gradient
  // The xBC columns of a wider row, read in place (row stride 50), no init.
  auto zx = torch::randn({2, 30, 50}), w = torch::randn({20, 1, 4}), b = torch::randn({20});
  auto y = causal_conv1d_silu(zx.cuda().narrow(2, 10, 20), w.cuda(), b.cuda());
  EXPECT_LT(rel(y, causal_conv1d_silu_reference(zx.narrow(2, 10, 20), w, b)), 1e-5);
  // bf16 input, fp32 compute and output.
  auto xb = torch::randn({2, 30, 20}).to(at::kBFloat16);
  auto yb = causal_conv1d_silu(xb.cuda(), w.cuda(), b.cuda());
  EXPECT_EQ(yb.scalar_type(), at::kFloat);
  EXPECT_LT(rel(yb, causal_conv1d_silu_reference(xb.to(at::kFloat), w, b)), 1e-5);
}

TEST(CudaConv, GradcheckFp64AndHook) {
  REQUIRE_CUDA();
  torch::manual_seed(5);
  auto init = torch::randn({2, 3, 3}, at::kDouble).cuda();
  Op f = [init](const std::vector<at::Tensor>& v) { return causal_conv1d_silu(v[0], v[1], v[2], init); };
  EXPECT_LT(cuda_gradcheck(f, {torch::randn({2, 5, 3}), torch::randn({3, 1, 4}), torch::randn({3})}), 1e-7);
#if DYNARCH_CUDA
  auto x = torch::randn({2, 8, 6}, at::kCUDA), w = torch::randn({6, 1, 4}, at::kCUDA), b = torch::randn({6}, at::kCUDA);
  EXPECT_TRUE(torch::equal(causal_conv1d_silu(x, w, b), cuda::causal_conv1d_silu(x, w, b, at::Tensor())));
  expect_error([&] { cuda::causal_conv1d_silu(x, torch::randn({6, 1, 9}, at::kCUDA), b, {}); }, "kernel width must be");
  expect_error([&] { cuda::causal_conv1d_silu(x.transpose(1, 2), w, b, {}); }, "unit channel stride");
#endif
}

// ---- Sinkhorn-Knopp (mhc.md §4) ----

TEST(CudaSinkhorn, MatchesReference) {
  REQUIRE_CUDA();
  torch::manual_seed(6);
  for (int64_t n : {2, 3, 4, 8})
    for (double eps : {0.0, 1e-6})
      for (bool v4 : {false, true}) {
        SinkhornOptions o;
        o.eps = eps;
        o.eps_after_first = v4;
        Op op = [o](const std::vector<at::Tensor>& v) { return sinkhorn(v[0], o); };
        Op ref = [o](const std::vector<at::Tensor>& v) { return sinkhorn_reference(v[0], o); };
        expect_cuda_matches(
            op, ref, {torch::randn({1000, n, n}) * 2}, 1e-4,
            "sinkhorn n=" + std::to_string(n) + " eps=" + std::to_string(eps) + " v4=" + std::to_string(v4));
      }
  auto one = sinkhorn(torch::randn({5, 1, 1}, at::kCUDA));
  EXPECT_TRUE(torch::equal(one.cpu(), torch::ones({5, 1, 1})));
}

TEST(CudaSinkhorn, GradcheckFp64AndHook) {
  REQUIRE_CUDA();
  torch::manual_seed(7);
  for (int64_t n : {3, 4}) {
    SinkhornOptions o;
    o.iters = 5;
    o.eps = 1e-3;
    Op f = [o](const std::vector<at::Tensor>& v) { return sinkhorn(v[0], o); };
    EXPECT_LT(cuda_gradcheck(f, {torch::randn({3, n, n})}), 1e-7) << n;
  }
#if DYNARCH_CUDA
  auto Z = torch::randn({64, 4, 4}, at::kCUDA);
  EXPECT_TRUE(torch::equal(sinkhorn(Z), cuda::sinkhorn(Z, 20, 1e-6, false)));
  // n above the kernel's cap: the binding refuses, the op takes the reference.
  auto Z9 = torch::randn({2, 9, 9}, at::kCUDA);
  expect_error([&] { cuda::sinkhorn(Z9, 20, 1e-6, false); }, "1 <= n <= 8");
  EXPECT_LT((sinkhorn(Z9) - sinkhorn_reference(Z9.cpu(), SinkhornOptions{}).cuda()).abs().max().item<double>(), 1e-5);
  expect_error([&] { sinkhorn(Z.to(at::kHalf)); }, "sinkhorn: Z must be");
#endif
}

// ---- HC / mHC stream mixing (mhc.md §1) ----

TEST(CudaStreamMix, MatchesReference) {
  REQUIRE_CUDA();
  torch::manual_seed(8);
  Op pre = [](const std::vector<at::Tensor>& v) { return hc_pre_mix(v[0], v[1]); };
  Op pre_ref = [](const std::vector<at::Tensor>& v) { return hc_pre_mix_reference(v[0], v[1]); };
  Op post = [](const std::vector<at::Tensor>& v) { return hc_post_res(v[0], v[1], v[2], v[3]); };
  Op post_ref = [](const std::vector<at::Tensor>& v) { return hc_post_res_reference(v[0], v[1], v[2], v[3]); };
  for (int64_t n : {1, 3, 4, 5})
    for (int64_t D : {50, 1030}) {
      const std::string what = "n=" + std::to_string(n) + " D=" + std::to_string(D);
      expect_cuda_matches(pre, pre_ref, {torch::randn({37, n, D}), torch::rand({37, n})}, 1e-4, "pre_mix " + what);
      expect_cuda_matches(
          post, post_ref,
          {torch::randn({37, n, D}), torch::rand({37, n, n}), torch::rand({37, n}) * 2, torch::randn({37, D})}, 1e-4,
          "post_res " + what);
    }
  // Only y and R need gradients (the kernels for X and post are skipped).
  auto X = torch::randn({5, 4, 8}, at::kCUDA), p = torch::rand({5, 4}, at::kCUDA);
  auto R = torch::rand({5, 4, 4}, at::kCUDA).requires_grad_(true),
       y = torch::randn({5, 8}, at::kCUDA).requires_grad_(true);
  auto g = torch::autograd::grad({hc_post_res(X, R, p, y).sum()}, {R, y});
  auto Rc = R.detach().cpu().requires_grad_(true), yc = y.detach().cpu().requires_grad_(true);
  auto gc = torch::autograd::grad({hc_post_res_reference(X.cpu(), Rc, p.cpu(), yc).sum()}, {Rc, yc});
  EXPECT_LT(rel(g[0], gc[0]), 1e-5);
  EXPECT_LT(rel(g[1], gc[1]), 1e-5);
}

TEST(CudaStreamMix, GradcheckFp64AndHook) {
  REQUIRE_CUDA();
  torch::manual_seed(9);
  Op pre = [](const std::vector<at::Tensor>& v) { return hc_pre_mix(v[0], v[1]); };
  Op post = [](const std::vector<at::Tensor>& v) { return hc_post_res(v[0], v[1], v[2], v[3]); };
  for (int64_t n : {1, 4}) {
    EXPECT_LT(cuda_gradcheck(pre, {torch::randn({3, n, 5}), torch::randn({3, n})}), 1e-7);
    EXPECT_LT(cuda_gradcheck(
                  post, {torch::randn({3, n, 5}), torch::randn({3, n, n}), torch::randn({3, n}), torch::randn({3, 5})}),
              1e-7);
  }
#if DYNARCH_CUDA
  auto X = torch::randn({6, 4, 40}, at::kCUDA), p = torch::rand({6, 4}, at::kCUDA);
  auto R = torch::rand({6, 4, 4}, at::kCUDA), y = torch::randn({6, 40}, at::kCUDA);
  EXPECT_TRUE(torch::equal(hc_pre_mix(X, p), cuda::hc_pre_mix(X, p)));
  EXPECT_TRUE(torch::equal(hc_post_res(X, R, p, y), cuda::hc_post_res(X, R, p, y)));
  expect_error([&] { hc_post_res(X, R, p.to(at::kDouble), y); }, "hc_post_res: post must be");
  expect_error([&] { hc_pre_mix(X, p.narrow(1, 0, 3)); }, "pre must have shape");
#endif
}

// ---- Mamba-2 SSD chunked scan forward (hnet.md §11.3) ----

TEST(CudaSsd, ForwardMatchesSequential) {
  REQUIRE_CUDA();
#if DYNARCH_CUDA
  torch::manual_seed(10);
  // L: one partial chunk, whole chunks, whole + partial; with and without an initial state.
  for (int64_t L : {5, 128, 300})
    for (bool with_init : {false, true})
      for (auto dtype : {at::kFloat, at::kDouble}) {
        const int64_t B = 2, H = 3, P = 8, N = 16, Q = 64;
        auto o = at::TensorOptions().dtype(dtype);
        auto x = torch::randn({B, L, H, P}, o), dt = torch::rand({B, L, H}, o) * 0.5;
        auto a = -torch::rand({H}, o) * 4 - 0.5, Bm = torch::randn({B, L, N}, o), Cm = torch::randn({B, L, N}, o);
        auto init = with_init ? torch::randn({B, H, P, N}, o) : at::Tensor();
        auto ref = ssd_sequential(x, dt, a, Bm, Cm, init);
        auto [y, fin] = cuda::ssd_chunk_scan_forward(x.cuda(), dt.cuda(), a.cuda(), Bm.cuda(), Cm.cuda(), Q,
                                                     with_init ? init.cuda() : at::Tensor());
        const double tol = dtype == at::kFloat ? 1e-4 : 1e-10;
        const std::string what = "L=" + std::to_string(L) + " init=" + std::to_string(with_init);
        EXPECT_LT(rel(y, ref.y), tol) << what;
        EXPECT_LT(rel(fin, ref.state), tol) << what;
      }
  expect_error(
      [] {
        cuda::ssd_chunk_scan_forward(torch::randn({1, 4, 2, 3}, at::kCUDA), torch::rand({1, 4, 2}, at::kCUDA),
                                     -torch::rand({3}, at::kCUDA), torch::randn({1, 4, 5}, at::kCUDA),
                                     torch::randn({1, 4, 5}, at::kCUDA), 2);
      },
      "a must have shape");
#endif
}

// ---- Mamba-2 SSD chunked scan, forward + backward (autograd Function) ----

namespace {
// y and the final state of a scan, flattened into one tensor (so one upstream
// weight covers both); dt and a come from free parameters (dt > 0, a < 0).
at::Tensor ssd_both(const SsdResult& r) { return at::cat({r.y.flatten(), r.state.flatten()}); }

Op ssd_op(int64_t Q, bool with_init) {
  return [Q, with_init](const std::vector<at::Tensor>& v) {
#if DYNARCH_CUDA
    auto [y, fin] = cuda::ssd_chunk_scan(v[0], at::softplus(v[1]), -at::exp(v[2]), v[3], v[4], Q,
                                         with_init ? v[5] : at::Tensor());
    return ssd_both({y, fin});
#else
    (void)Q, (void)with_init;
    return v[0];
#endif
  };
}

Op ssd_ref(bool with_init) {
  return [with_init](const std::vector<at::Tensor>& v) {
    return ssd_both(ssd_sequential(v[0], at::softplus(v[1]), -at::exp(v[2]), v[3], v[4],
                                   with_init ? v[5] : at::Tensor()));
  };
}

std::vector<at::Tensor> ssd_inputs(int64_t B, int64_t L, int64_t H, int64_t P, int64_t N, bool with_init) {
  std::vector<at::Tensor> v{torch::randn({B, L, H, P}), torch::randn({B, L, H}) - 1, torch::rand({H}) * 2 - 1,
                            torch::randn({B, L, N}), torch::randn({B, L, N})};
  if (with_init) v.push_back(torch::randn({B, H, P, N}));
  return v;
}
}  // namespace

TEST(CudaSsdChunkScan, MatchesSequential) {
  REQUIRE_CUDA();
  torch::manual_seed(11);
  // (L, Q): partial last chunk, whole chunks, Q = 1, Q > L; with and without an initial state.
  for (auto [L, Q] : {std::pair<int64_t, int64_t>{300, 64}, {128, 64}, {9, 1}, {20, 256}})
    for (bool with_init : {false, true})
      expect_cuda_matches(ssd_op(Q, with_init), ssd_ref(with_init), ssd_inputs(2, L, 3, 16, 32, with_init), 1e-4,
                          "ssd L=" + std::to_string(L) + " Q=" + std::to_string(Q) + " init=" + std::to_string(with_init));
#if DYNARCH_CUDA
  // Only y used (no gradient reaches the final state), then only the final state.
  auto o = at::TensorOptions().device(at::kCUDA);
  auto x = torch::randn({2, 50, 2, 8}, o).requires_grad_(true), dt = (torch::rand({2, 50, 2}, o) * 0.5).requires_grad_(true);
  auto a = (-torch::rand({2}, o) - 0.5).requires_grad_(true), Bm = torch::randn({2, 50, 16}, o).requires_grad_(true);
  auto Cm = torch::randn({2, 50, 16}, o).requires_grad_(true);
  for (int which : {0, 1}) {
    auto [y, fin] = cuda::ssd_chunk_scan(x, dt, a, Bm, Cm, 16);
    auto g = torch::autograd::grad({which ? fin.sum() : y.sum()}, {x, dt, a, Bm, Cm});
    std::vector<at::Tensor> c;
    for (const auto& t : {x, dt, a, Bm, Cm}) c.push_back(t.detach().cpu().requires_grad_(true));
    auto r = ssd_sequential(c[0], c[1], c[2], c[3], c[4]);
    auto gc = torch::autograd::grad({which ? r.state.sum() : r.y.sum()}, c, {}, false, false, /*allow_unused=*/true);
    gc[4] = gc[4].defined() ? gc[4] : torch::zeros_like(c[4]);  // Cm: unused by the final state
    for (size_t i = 0; i < gc.size(); ++i) EXPECT_LT(rel(g[i], gc[i]), 1e-4) << which << " input " << i;
  }
  // The forward-only entry gives the same numbers.
  auto [y1, f1] = cuda::ssd_chunk_scan(x, dt, a, Bm, Cm, 16);
  auto [y2, f2] = cuda::ssd_chunk_scan_forward(x.detach(), dt.detach(), a.detach(), Bm.detach(), Cm.detach(), 16);
  EXPECT_TRUE(torch::equal(y1, y2));
  EXPECT_TRUE(torch::equal(f1, f2));
#endif
}

TEST(CudaSsdChunkScan, GradcheckFp64AndErrors) {
  REQUIRE_CUDA();
  torch::manual_seed(12);
  for (bool with_init : {false, true})
    EXPECT_LT(cuda_gradcheck(ssd_op(2, with_init), ssd_inputs(1, 5, 2, 2, 3, with_init)), 1e-7) << with_init;
#if DYNARCH_CUDA
  auto o = at::TensorOptions().device(at::kCUDA);
  auto x = torch::randn({1, 4, 2, 3}, o), dt = torch::rand({1, 4, 2}, o), a = -torch::rand({2}, o);
  auto Bm = torch::randn({1, 4, 5}, o), Cm = torch::randn({1, 4, 5}, o);
  expect_error([&] { cuda::ssd_chunk_scan(x, dt, -torch::rand({3}, o), Bm, Cm, 2); }, "ssd_chunk_scan: a must have shape");
  expect_error([&] { cuda::ssd_chunk_scan(x, dt, a, Bm, Cm.cpu(), 2); }, "ssd_chunk_scan: Cm is on cpu");
  expect_error([&] { cuda::ssd_chunk_scan(x, dt.to(at::kDouble), a, Bm, Cm, 2); }, "ssd_chunk_scan: dt must be Float");
  expect_error([&] { cuda::ssd_chunk_scan(x, dt, a, Bm, Cm, 0); }, "chunk must be >= 1");
  expect_error([&] { cuda::ssd_chunk_scan(x, dt, a, Bm, Cm, 2, torch::randn({1, 2, 3, 4}, o)); },
               "ssd_chunk_scan: init must have shape");
  expect_error([&] { cuda::ssd_chunk_scan(x.to(at::kHalf), dt, a, Bm, Cm, 2); }, "ssd_chunk_scan: x must be");
#endif
}

// ---- packed rows: sequence starts in the conv and the scan (Mamba2::forward_packed on CUDA) ----

namespace {
// Three rows of 300: starts inside chunks, at chunk edges (64, 128), length-1
// sequences, a row of one sequence, sequences over several chunks.
at::Tensor packed_starts() { return starts_of({{100, 1, 27, 64, 1, 107}, {300}, {64, 64, 172}}); }
}  // namespace

TEST(CudaSsdChunkScan, SeqStartsMatchSequential) {
  REQUIRE_CUDA();
  torch::manual_seed(13);
  const auto st = packed_starts();
  for (int64_t Q : {64, 1, 512})
    for (bool with_init : {false, true}) {
      Op op = [Q, with_init, st](const std::vector<at::Tensor>& v) {
        return ssd_both(ssd_chunk_scan(v[0], at::softplus(v[1]), -at::exp(v[2]), v[3], v[4], Q,
                                       with_init ? v[5] : at::Tensor(), st.to(v[0].device())));
      };
      Op ref = [with_init, st](const std::vector<at::Tensor>& v) {
        return ssd_both(ssd_sequential(v[0], at::softplus(v[1]), -at::exp(v[2]), v[3], v[4],
                                       with_init ? v[5] : at::Tensor(), st));
      };
      expect_cuda_matches(op, ref, ssd_inputs(3, 300, 3, 16, 32, with_init), 1e-4,
                          "packed ssd Q=" + std::to_string(Q) + " init=" + std::to_string(with_init));
    }
  // fp64 gradcheck on the device; (L) starts shared by the rows.
  const auto st1 = starts_of({{2, 1, 4}}).squeeze(0).cuda();
  Op f = [st1](const std::vector<at::Tensor>& v) {
    return ssd_both(ssd_chunk_scan(v[0], at::softplus(v[1]), -at::exp(v[2]), v[3], v[4], 2, v[5], st1));
  };
  EXPECT_LT(cuda_gradcheck(f, ssd_inputs(2, 7, 2, 2, 3, true)), 1e-7);
#if DYNARCH_CUDA
  auto o = at::TensorOptions().device(at::kCUDA);
  auto x = torch::randn({1, 4, 2, 3}, o), dt = torch::rand({1, 4, 2}, o), a = -torch::rand({2}, o);
  auto Bm = torch::randn({1, 4, 5}, o), Cm = torch::randn({1, 4, 5}, o);
  auto s4 = torch::tensor({0, 0, 2, 3}, o.dtype(at::kLong));
  // The op's hook reaches the kernel; the forward-only entry agrees.
  auto r = ssd_chunk_scan(x, dt, a, Bm, Cm, 2, {}, s4);
  auto [y, fin] = cuda::ssd_chunk_scan_forward(x, dt, a, Bm, Cm, 2, {}, s4);
  EXPECT_TRUE(torch::equal(r.y, y));
  EXPECT_TRUE(torch::equal(r.state, fin));
  expect_error([&] { cuda::ssd_chunk_scan(x, dt, a, Bm, Cm, 2, {}, s4.to(at::kInt)); },
               "ssd_chunk_scan: seq_start must be Long");
  expect_error([&] { cuda::ssd_chunk_scan(x, dt, a, Bm, Cm, 2, {}, s4.cpu()); }, "ssd_chunk_scan: seq_start is on cpu");
  expect_error([&] { cuda::ssd_chunk_scan_forward(x, dt, a, Bm, Cm, 2, {}, s4.narrow(0, 0, 3)); },
               "ssd_chunk_scan_forward: seq_start must have shape (4) or (1, 4)");
#endif
}

TEST(CudaConv, SeqStartsMatchReference) {
  REQUIRE_CUDA();
  torch::manual_seed(14);
  const auto st = packed_starts();
  Op op = [st](const std::vector<at::Tensor>& v) {
    return causal_conv1d_silu(v[0], v[1], v[2], v[3], st.to(v[0].device()));
  };
  Op ref = [st](const std::vector<at::Tensor>& v) { return causal_conv1d_silu_reference(v[0], v[1], v[2], v[3], st); };
  for (int64_t K : {4, 2})
    expect_cuda_matches(op, ref,
                        {torch::randn({3, 300, 40}), torch::randn({40, 1, K}) * 0.5, torch::randn({40}),
                         torch::randn({3, K - 1, 40})},
                        1e-4, "packed conv K=" + std::to_string(K), 3);  // init: no gradient
  auto st1 = starts_of({{2, 1, 3}}).squeeze(0).cuda();
  Op f = [st1](const std::vector<at::Tensor>& v) { return causal_conv1d_silu(v[0], v[1], v[2], {}, st1); };
  EXPECT_LT(cuda_gradcheck(f, {torch::randn({2, 6, 3}), torch::randn({3, 1, 4}), torch::randn({3})}), 1e-7);
#if DYNARCH_CUDA
  auto x = torch::randn({2, 6, 3}, at::kCUDA), w = torch::randn({3, 1, 4}, at::kCUDA), b = torch::randn({3}, at::kCUDA);
  expect_error([&] { cuda::causal_conv1d_silu(x, w, b, {}, st1.to(at::kFloat)); },
               "causal_conv1d_silu: seq_start must be Long");
  expect_error([&] { cuda::causal_conv1d_silu(x, w, b, {}, st1.view({6, 1})); },
               "causal_conv1d_silu: seq_start must have shape (6) or (2, 6)");
#endif
}

// The layer: Mamba2::forward_packed on CUDA (the device ops with the starts'
// device copy) against the fused packed CPU layer, output and every gradient.
TEST(CudaSsdChunkScan, Mamba2PackedOnCudaEqualsCpu) {
  REQUIRE_CUDA();
  torch::manual_seed(15);
  auto cpu = std::make_shared<Mamba2>(64, 16, 4, 2, 16, 32);
  auto gpu = std::make_shared<Mamba2>(64, 16, 4, 2, 16, 32);
  {
    torch::NoGradGuard ng;
    auto pc = cpu->parameters(), pg = gpu->parameters();
    for (size_t i = 0; i < pc.size(); ++i) pg[i].copy_(pc[i]);
  }
  gpu->to(at::kCUDA);
  auto len = torch::tensor({1, 90, 0, 33, 64, 130}, at::kLong);
  auto x = torch::randn({6, 130, 64});
  auto pk_cpu = packing_from_lengths(len, 130), pk_gpu = packing_from_lengths(len.cuda(), 130);
  EXPECT_TRUE(pk_gpu.starts_on(x.cuda().device()).is_same(pk_gpu.seq_start_device));  // no copy per layer
  auto xc = pack(x, pk_cpu).requires_grad_(true), xg = pack(x.cuda(), pk_gpu).requires_grad_(true);
  auto yc = cpu->forward_packed(xc, pk_cpu), yg = gpu->forward_packed(xg, pk_gpu);
  EXPECT_LT(rel(yg, yc), 1e-4);
  auto w = torch::randn_like(yc);
  auto pc = cpu->parameters(), pg = gpu->parameters();
  pc.insert(pc.begin(), xc);
  pg.insert(pg.begin(), xg);
  auto gc = torch::autograd::grad({(yc * w).sum()}, pc), gg = torch::autograd::grad({(yg * w.cuda()).sum()}, pg);
  for (size_t i = 0; i < gc.size(); ++i) EXPECT_LT(rel(gg[i], gc[i]), 1e-4) << "gradient " << i;
}

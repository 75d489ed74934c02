// The tiled SSD scan kernels (kernels/cuda/mamba/ssd_scan_tiled.cuh) on the
// GPU, through the raw launchers with the kernels chosen explicitly: fp32
// (3xTF32 tensor cores) against the naive kernels in fp64 and fp32 at the
// issue's shape (<= 1e-4 relative), against the CPU references at a ragged
// shape, the tiled backward against the naive one in fp64, and the fp64
// plain-loop path with 32 lanes (the host emulation runs it with one lane),
// and all of it again on packed rows (sequence starts).
// Skipped when no GPU is visible (always in the CPU build).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda_test_util.h"

#include "kernels/cpu/mamba/ssd_chunked.h"

#if DYNARCH_CUDA
#include "kernels/cuda/binding.h"
#include "kernels/cuda/mamba/ssd_scan_launch.h"
#endif

using namespace dynarch;
using dynarch::testutil::rel;

#if DYNARCH_CUDA
namespace {

using cuda::SsdKernels;

struct Shape {
  int64_t B, L, H, P, N, Q;
};

// Inputs on the GPU in `dtype` (dt small and a in [-1.5, -0.5] as in the benchmark).
std::vector<at::Tensor> ssd_gpu_inputs(const Shape& k, at::ScalarType dtype, bool with_init) {
  auto o = at::TensorOptions().device(at::kCUDA).dtype(dtype);
  return {torch::randn({k.B, k.L, k.H, k.P}, o), torch::rand({k.B, k.L, k.H}, o) * 0.1 + 0.001,
          -torch::rand({k.H}, o) - 0.5,          torch::randn({k.B, k.L, k.N}, o),
          torch::randn({k.B, k.L, k.N}, o),      with_init ? torch::randn({k.B, k.H, k.P, k.N}, o) : at::Tensor()};
}

template <class C>
C* ptr(const at::Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<C>() : nullptr;
}

cuda::SsdShape shape_of(const Shape& k, SsdKernels kernels) {
  cuda::SsdShape s = cuda::make_ssd_shape(k.B, k.L, k.H, k.P, k.N, k.Q);
  s.kernels = kernels;
  return s;
}

// y, the final state and the forward scratch (cum, cb, chunk-entry states);
// st: (B, L) int64 sequence starts on the GPU (packed rows), or undefined.
template <class C>
std::vector<at::Tensor> raw_forward(const Shape& k, const std::vector<at::Tensor>& v, SsdKernels kernels,
                                    const at::Tensor& st = {}) {
  const auto s = shape_of(k, kernels);
  auto y = torch::empty_like(v[0]), fin = torch::empty({k.B, k.H, k.P, k.N}, v[0].options());
  auto scratch = torch::empty({cuda::ssd_scratch_elems(s)}, v[0].options());
  cuda::check_launch(cuda::ssd_forward_chunked<C>(ptr<C>(v[0]), ptr<C>(v[1]), ptr<C>(v[2]), ptr<C>(v[3]), ptr<C>(v[4]),
                                                  ptr<C>(v[5]), ptr<int64_t>(st), ptr<C>(y), ptr<C>(fin),
                                                  ptr<C>(scratch), s, cuda::stream()),
                     "raw_forward");
  return {y, fin, scratch};
}

// dx, ddt, da, dBm, dCm, dinit of <gy, y> + <gf, final state>; st as raw_forward's.
template <class C>
std::vector<at::Tensor> raw_backward(const Shape& k, const std::vector<at::Tensor>& v, const at::Tensor& gy,
                                     const at::Tensor& gf, SsdKernels kernels, const at::Tensor& st = {}) {
  const auto s = shape_of(k, kernels);
  std::vector<at::Tensor> g{torch::empty_like(v[0]), torch::empty_like(v[1]), torch::empty_like(v[2]),
                            torch::empty_like(v[3]), torch::empty_like(v[4]), torch::empty_like(gf)};
  auto scratch = torch::empty({cuda::ssd_backward_scratch_elems(s)}, v[0].options());
  cuda::check_launch(cuda::ssd_backward_chunked<C>(ptr<C>(v[0]), ptr<C>(v[1]), ptr<C>(v[2]), ptr<C>(v[3]),
                                                   ptr<C>(v[4]), ptr<C>(v[5]), ptr<int64_t>(st), ptr<C>(gy),
                                                   ptr<C>(gf), ptr<C>(g[0]), ptr<C>(g[1]), ptr<C>(g[2]),
                                                   ptr<C>(g[3]), ptr<C>(g[4]), ptr<C>(g[5]), ptr<C>(scratch), s,
                                                   cuda::stream()),
                     "raw_backward");
  return g;
}

std::vector<at::Tensor> to(const std::vector<at::Tensor>& v, at::ScalarType t) {
  std::vector<at::Tensor> out;
  for (const auto& x : v) out.push_back(x.defined() ? x.to(t) : x);
  return out;
}

// The issue's scan shape (8192 bytes, 32 heads x 64, d_state 128, chunk 256) at batch 2, not 8:
// the fp64 naive reference runs in seconds, and gpu_check.sh gives all CUDA tests 150 s.
constexpr Shape kIssue{2, 8192, 32, 64, 128, 256};

}  // namespace
#endif

TEST(CudaSsdTiled, ForwardAtIssueShape) {
  REQUIRE_CUDA();
#if DYNARCH_CUDA
  torch::manual_seed(31);
  auto v = ssd_gpu_inputs(kIssue, at::kFloat, false);
  auto tiled = raw_forward<float>(kIssue, v, SsdKernels::tiled);
  auto naive = raw_forward<float>(kIssue, v, SsdKernels::naive);
  auto exact = raw_forward<double>(kIssue, to(v, at::kDouble), SsdKernels::naive);
  const char* names[] = {"y", "final state", "scratch (cum, cb, chunk states)"};
  for (int i = 0; i < 3; ++i) {
    const double e64 = rel(tiled[i], exact[i]), e32 = rel(tiled[i], naive[i]), n64 = rel(naive[i], exact[i]);
    EXPECT_LT(e64, 1e-4) << names[i];
    EXPECT_LT(e32, 1e-4) << names[i];
    std::cout << "[ issue shape " << names[i] << " ] tiled fp32 vs naive fp64 " << e64 << ", vs naive fp32 " << e32
              << " (naive fp32 vs fp64 " << n64 << ")\n";
  }
  EXPECT_TRUE(cuda::ssd_use_tiled(cuda::make_ssd_shape(8, 8192, 32, 64, 128, 256)));  // the automatic choice
  // One TF32 pass (tiled_tf32, for measurements): coarser, but the same computation.
  auto one = raw_forward<float>(kIssue, v, SsdKernels::tiled_tf32);
  std::cout << "[ issue shape y ] one TF32 pass vs naive fp64 " << rel(one[0], exact[0]) << "\n";
  EXPECT_LT(rel(one[0], exact[0]), 1e-2);
#endif
}

TEST(CudaSsdTiled, RaggedMatchesCpuReference) {
  REQUIRE_CUDA();
#if DYNARCH_CUDA
  torch::manual_seed(32);
  // Ragged last chunk, L < Q, P and N off the 16 grid (tiled forced), Q over a row tile.
  for (Shape k : {Shape{2, 1000, 4, 64, 128, 256}, Shape{1, 100, 3, 16, 32, 256}, Shape{2, 170, 2, 80, 72, 160}})
    for (bool with_init : {false, true}) {
      auto v = ssd_gpu_inputs(k, at::kFloat, with_init);
      auto c = to(v, at::kDouble);
      for (auto& t : c) t = t.defined() ? t.cpu() : t;
      auto ref = ssd_sequential(c[0], c[1], c[2], c[3], c[4], c[5]);
      auto t = raw_forward<float>(k, v, SsdKernels::tiled);
      const std::string what = "L=" + std::to_string(k.L) + " P=" + std::to_string(k.P) + " init=" + std::to_string(with_init);
      EXPECT_LT(rel(t[0], ref.y), 1e-4) << what;
      EXPECT_LT(rel(t[1], ref.state), 1e-4) << what;
      auto t64 = raw_forward<double>(k, to(v, at::kDouble), SsdKernels::tiled);  // the 32-lane plain loops
      EXPECT_LT(rel(t64[0], ref.y), 1e-12) << what;
      EXPECT_LT(rel(t64[1], ref.state), 1e-12) << what;
      auto n64 = raw_forward<double>(k, to(v, at::kDouble), SsdKernels::naive);
      EXPECT_LT(rel(t64[2], n64[2]), 1e-12) << what << ": scratch";
    }
#endif
}

TEST(CudaSsdTiled, BackwardMatchesNaive) {
  REQUIRE_CUDA();
#if DYNARCH_CUDA
  torch::manual_seed(33);
  const char* names[] = {"dx", "ddt", "da", "dBm", "dCm", "dinit"};
  // The issue's shape, then a ragged one with an initial state; fp64 naive as the reference.
  for (Shape k : {kIssue, Shape{2, 1000, 4, 64, 128, 256}}) {
    auto v = ssd_gpu_inputs(k, at::kFloat, k.L != kIssue.L);
    auto gy = torch::randn_like(v[0]), gf = torch::randn({k.B, k.H, k.P, k.N}, v[0].options());
    auto tiled = raw_backward<float>(k, v, gy, gf, SsdKernels::tiled);
    auto naive = raw_backward<float>(k, v, gy, gf, SsdKernels::naive);
    auto exact =
        raw_backward<double>(k, to(v, at::kDouble), gy.to(at::kDouble), gf.to(at::kDouble), SsdKernels::naive);
    for (int i = 0; i < 6; ++i) {
      EXPECT_LT(rel(tiled[i], exact[i]), 1e-4) << names[i] << " L=" << k.L;
      std::cout << "[ backward L=" << k.L << " " << names[i] << " ] vs naive fp64: tiled fp32 "
                << rel(tiled[i], exact[i]) << ", naive fp32 " << rel(naive[i], exact[i]) << "\n";
    }
  }
  // The fp64 tiled backward (32-lane plain loops) against the naive one: several tiles, off the 16 grid.
  const Shape k{2, 170, 2, 80, 72, 160};
  auto v = to(ssd_gpu_inputs(k, at::kFloat, true), at::kDouble);
  auto gy = torch::randn_like(v[0]), gf = torch::randn({k.B, k.H, k.P, k.N}, v[0].options());
  auto tiled = raw_backward<double>(k, v, gy, gf, SsdKernels::tiled);
  auto naive = raw_backward<double>(k, v, gy, gf, SsdKernels::naive);
  for (int i = 0; i < 6; ++i) EXPECT_LT(rel(tiled[i], naive[i]), 1e-10) << "fp64 " << names[i];
#endif
}

// Packed rows (sequence starts) on the tiled path: fp32 (3xTF32) against the
// naive fp64 kernels with the same starts (forward and every gradient, <= 1e-4),
// the fp64 tiled path (32-lane loops) against the naive one (1e-12 forward,
// 1e-10 gradients) and the forward against ssd_sequential with the starts.
// Starts inside chunks, at chunk edges (256, 512), length-1 sequences, a
// sequence over several chunks, a ragged last chunk, a row that is one
// sequence; the issue's P, N, Q (the automatic choice: tiled), then P, N off
// the 16 grid (tiled forced).
TEST(CudaSsdTiled, PackedRowsMatchNaive) {
  REQUIRE_CUDA();
#if DYNARCH_CUDA
  torch::manual_seed(34);
  const char* names[] = {"dx", "ddt", "da", "dBm", "dCm", "dinit"};
  const std::vector<std::pair<Shape, std::vector<std::vector<int64_t>>>> cases{
      {{2, 1500, 4, 64, 128, 256}, {{100, 156, 1, 255, 600, 1, 387}, {1500}}},
      {{2, 600, 2, 80, 72, 160}, {{10, 54, 96, 1, 9, 430}, {160, 1, 159, 280}}}};
  for (const auto& [k, rows] : cases)
    for (bool with_init : {false, true}) {
      const std::string what = "L=" + std::to_string(k.L) + " P=" + std::to_string(k.P) +
                               " init=" + std::to_string(with_init);
      const at::Tensor st = testutil::starts_of(rows).to(at::kCUDA);
      auto v = ssd_gpu_inputs(k, at::kFloat, with_init);
      auto v64 = to(v, at::kDouble);
      auto gy = torch::randn_like(v[0]), gf = torch::randn({k.B, k.H, k.P, k.N}, v[0].options());
      auto gy64 = gy.to(at::kDouble), gf64 = gf.to(at::kDouble);
      const auto fast = cuda::ssd_tiled_fits(shape_of(k, SsdKernels::automatic)) ? SsdKernels::automatic
                                                                                  : SsdKernels::tiled;
      // Forward.
      auto t32 = raw_forward<float>(k, v, fast, st);
      auto t64 = raw_forward<double>(k, v64, SsdKernels::tiled, st);
      auto n64 = raw_forward<double>(k, v64, SsdKernels::naive, st);
      for (int i = 0; i < 2; ++i) EXPECT_LT(rel(t32[i], n64[i]), 1e-4) << what << " fp32 output " << i;
      for (int i = 0; i < 3; ++i) EXPECT_LT(rel(t64[i], n64[i]), 1e-12) << what << " fp64 output " << i;
      std::vector<at::Tensor> c;
      for (const auto& t : v64) c.push_back(t.defined() ? t.cpu() : t);
      const SsdResult ref = ssd_sequential(c[0], c[1], c[2], c[3], c[4], c[5], st.cpu());
      EXPECT_LT(rel(t64[0], ref.y), 1e-12) << what;
      EXPECT_LT(rel(t64[1], ref.state), 1e-12) << what;
      std::cout << "[ packed " << what << " ] y: tiled fp32 vs naive fp64 " << rel(t32[0], n64[0])
                << ", tiled fp64 vs ssd_sequential " << rel(t64[0], ref.y) << "\n";
      // Backward.
      auto g32 = raw_backward<float>(k, v, gy, gf, fast, st);
      auto g64 = raw_backward<double>(k, v64, gy64, gf64, SsdKernels::tiled, st);
      auto gn = raw_backward<double>(k, v64, gy64, gf64, SsdKernels::naive, st);
      for (int i = 0; i < 6; ++i) {
        EXPECT_LT(rel(g32[i], gn[i]), 1e-4) << what << " fp32 " << names[i];
        EXPECT_LT(rel(g64[i], gn[i]), 1e-10) << what << " fp64 " << names[i];
        std::cout << "[ packed " << what << " " << names[i] << " ] tiled fp32 vs naive fp64 " << rel(g32[i], gn[i])
                  << ", tiled fp64 " << rel(g64[i], gn[i]) << "\n";
      }
    }
#endif
}

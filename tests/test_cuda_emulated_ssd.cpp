// The tiled SSD scan kernels (src/kernels/cuda/mamba/ssd_scan_tiled.cuh) and
// the block-level machinery under them (block.cuh, tile_gemm.cuh,
// tile_mma.cuh), compiled by g++ with DYNARCH_CUDA_EMULATE and run on the host
// (one call per block, phases as loops over threads and warps): fp64 through
// the plain-loop tile product against the naive kernels and the CPU references;
// fp32 through the emulated 3xTF32 split; the split's arithmetic itself. The
// tensor-core path (WMMA) and the GPU's races are test_cuda_kernels.cpp's.
// Built when the CUDA headers exist and the build is not the CUDA one.
#if DYNARCH_CUDA_EMULATED_TESTS
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

#include "cuda_test_util.h"

#include "kernels/cpu/mamba/ssd_chunked.h"

#define DYNARCH_CUDA_EMULATE 1
#include "kernels/cuda/mamba/ssd_scan.cu"
#include "kernels/cuda/mamba/ssd_scan_backward.cu"
#undef blockIdx
#undef threadIdx
#undef blockDim
#undef gridDim

using namespace dynarch;
using cuda::SsdKernels;
using dynarch::testutil::rel;

namespace {

template <class C>
C* ptr(const at::Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<C>() : nullptr;
}

struct SsdCase {
  int64_t B, L, H, P, N, Q;
  std::string str() const {
    return "B=" + std::to_string(B) + " L=" + std::to_string(L) + " H=" + std::to_string(H) + " P=" +
           std::to_string(P) + " N=" + std::to_string(N) + " Q=" + std::to_string(Q);
  }
};

struct SsdInputs {
  at::Tensor x, dt, a, Bm, Cm, init;  // init undefined: none
};

SsdInputs ssd_inputs(const SsdCase& k, bool with_init) {
  auto o = at::TensorOptions().dtype(at::kDouble);
  return {torch::randn({k.B, k.L, k.H, k.P}, o), torch::rand({k.B, k.L, k.H}, o) * 0.5 + 0.01,
          -torch::rand({k.H}, o) * 3 - 0.3,      torch::randn({k.B, k.L, k.N}, o),
          torch::randn({k.B, k.L, k.N}, o),      with_init ? torch::randn({k.B, k.H, k.P, k.N}, o) : at::Tensor()};
}

// What the forward launcher leaves: y, the final state and its scratch (cum, cb, chunk-entry states).
struct EmuForward {
  at::Tensor y, fin, scratch;
};

template <class C>
EmuForward emu_forward(const SsdCase& k, const SsdInputs& in, SsdKernels kernels) {
  const auto dtype = std::is_same_v<C, float> ? at::kFloat : at::kDouble;
  auto cv = [&](const at::Tensor& t) { return t.defined() ? t.to(dtype).contiguous() : t; };
  auto x = cv(in.x), dt = cv(in.dt), a = cv(in.a), Bm = cv(in.Bm), Cm = cv(in.Cm), init = cv(in.init);
  cuda::SsdShape s = cuda::make_ssd_shape(k.B, k.L, k.H, k.P, k.N, k.Q);
  s.kernels = kernels;
  EmuForward f{torch::full_like(x, 7.0), torch::full({k.B, k.H, k.P, k.N}, 7.0, x.options()),
               torch::full({cuda::ssd_scratch_elems(s)}, 7.0, x.options())};
  EXPECT_EQ(cuda::ssd_forward_chunked<C>(ptr<C>(x), ptr<C>(dt), ptr<C>(a), ptr<C>(Bm), ptr<C>(Cm), ptr<C>(init),
                                         ptr<C>(f.y), ptr<C>(f.fin), ptr<C>(f.scratch), s, nullptr),
            cudaSuccess);
  return f;
}

// Shapes: ragged last chunk; L < Q; several batches and heads with whole
// chunks; Q, P and N over one tile (several row / p / n tiles, fp64 tiles are
// 64 x 64) and not multiples of 16; Q below the K step; Q = 1.
const std::vector<SsdCase> kCases = {{2, 100, 3, 16, 32, 32}, {1, 20, 2, 16, 16, 64}, {3, 64, 4, 32, 16, 16},
                                     {2, 170, 2, 80, 72, 160}, {1, 37, 1, 8, 5, 8},    {1, 6, 2, 16, 16, 1}};

}  // namespace

// fp64: the tiled kernels (plain-loop tile products) equal the naive ones, and
// both the sequential recurrence and the tensor-op chunked form.
TEST(CudaEmulatedSsdTiled, ForwardFp64MatchesNaiveAndReferences) {
  torch::manual_seed(21);
  double worst_naive = 0, worst_seq = 0;
  for (const auto& k : kCases)
    for (bool with_init : {false, true}) {
      const std::string what = k.str() + " init=" + std::to_string(with_init);
      const SsdInputs in = ssd_inputs(k, with_init);
      const EmuForward t = emu_forward<double>(k, in, SsdKernels::tiled);
      const EmuForward n = emu_forward<double>(k, in, SsdKernels::naive);
      const SsdResult seq = ssd_sequential(in.x, in.dt, in.a, in.Bm, in.Cm, in.init);
      const SsdResult chk = ssd_chunked(in.x, in.dt, in.a, in.Bm, in.Cm, k.Q, in.init);
      const double dn = std::max({rel(t.y, n.y), rel(t.fin, n.fin), rel(t.scratch, n.scratch)});
      const double ds = std::max(rel(t.y, seq.y), rel(t.fin, seq.state));
      EXPECT_LT(dn, 1e-12) << what;  // cum, cb, the chunk-entry states too (the whole scratch)
      EXPECT_LT(ds, 1e-12) << what;
      EXPECT_LT(std::max(rel(t.y, chk.y), rel(t.fin, chk.state)), 1e-12) << what;
      worst_naive = std::max(worst_naive, dn), worst_seq = std::max(worst_seq, ds);
    }
  std::cout << "[ tiled fp64 ] max rel diff vs naive " << worst_naive << ", vs ssd_sequential " << worst_seq << "\n";
}

// The automatic choice: tiled where P and N are multiples of 16, naive elsewhere.
TEST(CudaEmulatedSsdTiled, AutomaticChoice) {
  EXPECT_TRUE(cuda::ssd_use_tiled(cuda::make_ssd_shape(8, 8192, 32, 64, 128, 256)));
  EXPECT_FALSE(cuda::ssd_use_tiled(cuda::make_ssd_shape(2, 64, 3, 8, 16, 32)));
  EXPECT_FALSE(cuda::ssd_use_tiled(cuda::make_ssd_shape(2, 64, 3, 16, 5, 32)));
  auto s = cuda::make_ssd_shape(2, 64, 3, 8, 16, 32);
  s.kernels = SsdKernels::tiled;
  EXPECT_TRUE(cuda::ssd_use_tiled(s));
  s = cuda::make_ssd_shape(8, 8192, 32, 64, 128, 256);
  s.kernels = SsdKernels::naive;
  EXPECT_FALSE(cuda::ssd_use_tiled(s));
}

// fp32: the emulated tile product rounds as the tensor cores do (3xTF32), so
// this is the accuracy the GPU's fp32 path should show (the issue asks 1e-4).
TEST(CudaEmulatedSsdTiled, ForwardFp32With3xTf32) {
  torch::manual_seed(22);
  double worst_tiled = 0, worst_naive = 0;
  for (const auto& k : {SsdCase{2, 100, 3, 16, 32, 32}, SsdCase{1, 300, 2, 64, 128, 256}})
    for (bool with_init : {false, true}) {
      const SsdInputs in = ssd_inputs(k, with_init);
      const SsdResult seq = ssd_sequential(in.x, in.dt, in.a, in.Bm, in.Cm, in.init);
      const EmuForward t = emu_forward<float>(k, in, SsdKernels::tiled);
      const EmuForward n = emu_forward<float>(k, in, SsdKernels::naive);
      const double dt = std::max(rel(t.y, seq.y), rel(t.fin, seq.state));
      const double dn = std::max(rel(n.y, seq.y), rel(n.fin, seq.state));
      EXPECT_LT(dt, 1e-5) << k.str() << " init=" << with_init;
      worst_tiled = std::max(worst_tiled, dt), worst_naive = std::max(worst_naive, dn);
    }
  std::cout << "[ tiled fp32 ] max rel diff vs fp64 ssd_sequential: tiled (3xTF32) " << worst_tiled
            << ", naive fp32 " << worst_naive << "\n";
}

// The backward reruns forward steps 1-4: with the tiled ones it gives the
// naive run's gradients (which test_cuda_emulated.cpp ties to autograd).
TEST(CudaEmulatedSsdTiled, BackwardWithTiledForwardStates) {
  torch::manual_seed(23);
  double worst = 0;
  for (const auto& k : {SsdCase{2, 100, 3, 16, 32, 32}, SsdCase{1, 20, 2, 16, 16, 64}, SsdCase{1, 37, 2, 8, 5, 8}})
    for (bool with_init : {false, true}) {
      const SsdInputs in = ssd_inputs(k, with_init);
      auto gy = torch::randn_like(in.x), gf = torch::randn({k.B, k.H, k.P, k.N}, in.x.options());
      std::vector<at::Tensor> out[2];
      for (int tiled : {0, 1}) {
        cuda::SsdShape s = cuda::make_ssd_shape(k.B, k.L, k.H, k.P, k.N, k.Q);
        s.kernels = tiled ? SsdKernels::tiled : SsdKernels::naive;
        auto& o = out[tiled];
        o = {torch::empty_like(in.x), torch::empty_like(in.dt), torch::empty_like(in.a), torch::empty_like(in.Bm),
             torch::empty_like(in.Cm), torch::empty_like(gf)};
        auto scratch = torch::empty({cuda::ssd_backward_scratch_elems(s)}, in.x.options());
        ASSERT_EQ(cuda::ssd_backward_chunked<double>(ptr<double>(in.x), ptr<double>(in.dt), ptr<double>(in.a),
                                                     ptr<double>(in.Bm), ptr<double>(in.Cm), ptr<double>(in.init),
                                                     ptr<double>(gy), ptr<double>(gf), ptr<double>(o[0]),
                                                     ptr<double>(o[1]), ptr<double>(o[2]), ptr<double>(o[3]),
                                                     ptr<double>(o[4]), ptr<double>(o[5]), ptr<double>(scratch), s,
                                                     nullptr),
                  cudaSuccess);
      }
      for (size_t i = 0; i < out[0].size(); ++i) {
        EXPECT_LT(rel(out[1][i], out[0][i]), 1e-12) << k.str() << " init=" << with_init << " gradient " << i;
        worst = std::max(worst, rel(out[1][i], out[0][i]));
      }
    }
  std::cout << "[ tiled fp64 ] backward: max rel diff of the gradients vs naive " << worst << "\n";
}

// The 3xTF32 split on the host: TF32 rounding by bit masking as cvt.rna does
// it; one TF32 product is ~1e-3 off, the three-term product ~1e-7.
TEST(CudaEmulatedSsdTiled, Tf32SplitArithmetic) {
  // Rounding: 10 explicit mantissa bits, to nearest, ties away from zero.
  EXPECT_EQ(cuda::tf32_round(1.0f + std::ldexp(1.0f, -11)), 1.0f + std::ldexp(1.0f, -10));    // tie: away
  EXPECT_EQ(cuda::tf32_round(-1.0f - std::ldexp(1.0f, -11)), -1.0f - std::ldexp(1.0f, -10));  // tie, negative
  EXPECT_EQ(cuda::tf32_round(1.0f + std::ldexp(1.0f, -12)), 1.0f);                            // below the tie
  EXPECT_EQ(cuda::tf32_round(0.0f), 0.0f);
  EXPECT_TRUE(std::isinf(cuda::tf32_round(INFINITY)));
  std::mt19937 gen(7);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> expo(-20, 20);
  double worst1 = 0, worst3 = 0;
  for (int i = 0; i < 100000; ++i) {
    const float a = std::ldexp(normal(gen), expo(gen)), b = std::ldexp(normal(gen), expo(gen));
    float ah, al, bh, bl;
    cuda::split_tf32(a, ah, al);
    cuda::split_tf32(b, bh, bl);
    uint32_t bits;
    std::memcpy(&bits, &ah, 4);
    ASSERT_EQ(bits & 0x1fffu, 0u) << a;  // hi is a TF32 value
    std::memcpy(&bits, &al, 4);
    ASSERT_EQ(bits & 0x1fffu, 0u) << a;  // and so is lo
    const double exact = double(a) * double(b);
    const double one = double(ah * bh);                      // one TF32 pass
    const double three = double((al * bh + ah * bl) + ah * bh);  // 3xTF32, in fp32 as the tensor cores sum
    worst1 = std::max(worst1, std::abs(one - exact) / std::abs(exact));
    worst3 = std::max(worst3, std::abs(three - exact) / std::abs(exact));
  }
  EXPECT_GT(worst1, 1e-4);  // TF32 alone: ~2^-11 per operand
  EXPECT_LT(worst1, 2e-3);
  EXPECT_LT(worst3, 1e-6);  // 3xTF32: ~fp32
  std::cout << "[ 3xTF32 ] max rel error of a product: 1xTF32 " << worst1 << ", 3xTF32 " << worst3 << "\n";
}

#endif  // DYNARCH_CUDA_EMULATED_TESTS

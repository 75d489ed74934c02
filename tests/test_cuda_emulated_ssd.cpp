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
#include "cuda_emulate_end.h"

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

// st: (B, L) sequence starts of packed rows, or undefined (none).
template <class C>
EmuForward emu_forward(const SsdCase& k, const SsdInputs& in, SsdKernels kernels, const at::Tensor& st = {}) {
  const auto dtype = std::is_same_v<C, float> ? at::kFloat : at::kDouble;
  auto cv = [&](const at::Tensor& t) { return t.defined() ? t.to(dtype).contiguous() : t; };
  auto x = cv(in.x), dt = cv(in.dt), a = cv(in.a), Bm = cv(in.Bm), Cm = cv(in.Cm), init = cv(in.init);
  cuda::SsdShape s = cuda::make_ssd_shape(k.B, k.L, k.H, k.P, k.N, k.Q);
  s.kernels = kernels;
  EmuForward f{torch::full_like(x, 7.0), torch::full({k.B, k.H, k.P, k.N}, 7.0, x.options()),
               torch::full({cuda::ssd_scratch_elems(s)}, 7.0, x.options())};
  EXPECT_EQ(cuda::ssd_forward_chunked<C>(ptr<C>(x), ptr<C>(dt), ptr<C>(a), ptr<C>(Bm), ptr<C>(Cm), ptr<C>(init),
                                         ptr<int64_t>(st), ptr<C>(f.y), ptr<C>(f.fin), ptr<C>(f.scratch), s, nullptr),
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
  double worst_tiled = 0, worst_naive = 0, best_one_pass = 1;
  for (const auto& k : {SsdCase{2, 100, 3, 16, 32, 32}, SsdCase{1, 300, 2, 64, 128, 256}})
    for (bool with_init : {false, true}) {
      const SsdInputs in = ssd_inputs(k, with_init);
      const SsdResult seq = ssd_sequential(in.x, in.dt, in.a, in.Bm, in.Cm, in.init);
      auto err = [&](const EmuForward& f) { return std::max(rel(f.y, seq.y), rel(f.fin, seq.state)); };
      const double dt = err(emu_forward<float>(k, in, SsdKernels::tiled));
      const double dn = err(emu_forward<float>(k, in, SsdKernels::naive));
      const double d1 = err(emu_forward<float>(k, in, SsdKernels::tiled_tf32));
      EXPECT_LT(dt, 1e-5) << k.str() << " init=" << with_init;
      EXPECT_GT(d1, 10 * dt) << k.str() << " init=" << with_init;  // one TF32 pass: the split matters
      worst_tiled = std::max(worst_tiled, dt), worst_naive = std::max(worst_naive, dn);
      best_one_pass = std::min(best_one_pass, d1);
    }
  std::cout << "[ tiled fp32 ] max rel diff vs fp64 ssd_sequential: tiled (3xTF32) " << worst_tiled
            << ", naive fp32 " << worst_naive << "; one TF32 pass (tiled_tf32) at least " << best_one_pass << "\n";
}

namespace {

// The backward's outputs (dx, ddt, da, dBm, dCm, dinit) with the given kernels;
// gy / g_final may be absent (null: zeros); `skip` leaves dx, dBm, dinit null;
// st as emu_forward's.
template <class C = double>
std::vector<at::Tensor> emu_backward(const SsdCase& k, const SsdInputs& in, const at::Tensor& gy, const at::Tensor& gf,
                                     bool skip, SsdKernels kernels, const at::Tensor& st = {}) {
  const auto dtype = std::is_same_v<C, float> ? at::kFloat : at::kDouble;
  auto cv = [&](const at::Tensor& t) { return t.defined() ? t.to(dtype).contiguous() : t; };
  cuda::SsdShape s = cuda::make_ssd_shape(k.B, k.L, k.H, k.P, k.N, k.Q);
  s.kernels = kernels;
  const SsdInputs v{cv(in.x), cv(in.dt), cv(in.a), cv(in.Bm), cv(in.Cm), cv(in.init)};
  std::vector<at::Tensor> o{torch::full_like(v.x, 7.0),  torch::full_like(v.dt, 7.0), torch::full_like(v.a, 7.0),
                            torch::full_like(v.Bm, 7.0), torch::full_like(v.Cm, 7.0),
                            torch::full({k.B, k.H, k.P, k.N}, 7.0, v.x.options())};
  auto scratch = torch::full({cuda::ssd_backward_scratch_elems(s)}, 7.0, v.x.options());
  auto out = [&](int i) { return skip && (i == 0 || i == 3 || i == 5) ? nullptr : ptr<C>(o[i]); };
  EXPECT_EQ(cuda::ssd_backward_chunked<C>(ptr<C>(v.x), ptr<C>(v.dt), ptr<C>(v.a), ptr<C>(v.Bm), ptr<C>(v.Cm),
                                          ptr<C>(v.init), ptr<int64_t>(st), ptr<C>(cv(gy)), ptr<C>(cv(gf)), out(0),
                                          out(1), out(2), out(3), out(4), out(5), ptr<C>(scratch), s, nullptr),
            cudaSuccess);
  return o;
}

}  // namespace

// The tiled backward (chunk-state gradients, dpos, dcb, dC, dB tiled; the
// forward steps it reruns tiled too) gives the naive backward's gradients
// (which test_cuda_emulated.cpp ties to autograd), with either upstream
// gradient absent and with gradients not requested. The largest difference is
// da's (~3e-13: a sum over all positions with cancellation, summed in another order).
TEST(CudaEmulatedSsdTiled, BackwardMatchesNaive) {
  torch::manual_seed(23);
  double worst = 0;
  // kCases with a smaller multi-tile case: the naive backward is slow in emulation.
  std::vector<SsdCase> cases(kCases.begin(), kCases.end());
  cases[3] = {1, 140, 2, 80, 72, 136};
  for (const auto& k : cases)
    for (bool with_init : {false, true})
      for (auto [with_gy, with_gf, skip] : {std::tuple{true, true, false}, {true, false, false}, {false, true, false},
                                            {true, true, true}}) {
        if (k.Q > 64 && (!with_gy || !with_gf)) continue;
        const SsdInputs in = ssd_inputs(k, with_init);
        auto gy = with_gy ? torch::randn_like(in.x) : at::Tensor();
        auto gf = with_gf ? torch::randn({k.B, k.H, k.P, k.N}, in.x.options()) : at::Tensor();
        const auto t = emu_backward(k, in, gy, gf, skip, SsdKernels::tiled);
        const auto n = emu_backward(k, in, gy, gf, skip, SsdKernels::naive);
        for (size_t i = 0; i < t.size(); ++i) {
          const double d = rel(t[i], n[i]);
          EXPECT_LT(d, 1e-12) << k.str() << " init=" << with_init << " gy=" << with_gy << " gf=" << with_gf
                              << " skip=" << skip << " gradient " << i;
          worst = std::max(worst, d);
        }
      }
  std::cout << "[ tiled fp64 ] backward: max rel diff of the gradients vs naive " << worst << "\n";
}

// fp32 gradients through the emulated 3xTF32 tile products against the fp64
// naive backward: what the GPU's fp32 path should show (the issue asks 1e-4).
TEST(CudaEmulatedSsdTiled, BackwardFp32With3xTf32) {
  torch::manual_seed(24);
  const char* names[] = {"dx", "ddt", "da", "dBm", "dCm", "dinit"};
  double worst[6] = {0, 0, 0, 0, 0, 0};
  for (const auto& k : {SsdCase{2, 100, 3, 16, 32, 32}, SsdCase{1, 300, 2, 64, 128, 256}}) {
    const SsdInputs in = ssd_inputs(k, true);
    auto gy = torch::randn_like(in.x), gf = torch::randn({k.B, k.H, k.P, k.N}, in.x.options());
    const auto t = emu_backward<float>(k, in, gy, gf, false, SsdKernels::tiled);
    const auto n = emu_backward<double>(k, in, gy, gf, false, SsdKernels::naive);
    for (int i = 0; i < 6; ++i) {
      EXPECT_LT(rel(t[i], n[i]), 1e-4) << k.str() << " " << names[i];
      worst[i] = std::max(worst[i], rel(t[i], n[i]));
    }
  }
  std::cout << "[ tiled fp32 ] backward, max rel diff vs fp64:";
  for (int i = 0; i < 6; ++i) std::cout << " " << names[i] << " " << worst[i];
  std::cout << "\n";
}

namespace {

// Packed rows (sequence starts): each case's rows as their sequences' lengths.
struct PackedCase {
  SsdCase k;
  std::vector<std::vector<int64_t>> rows;
};
const std::vector<PackedCase> kPacked = {
    // P, N on the 16 grid (the automatic choice): starts inside chunks and at chunk edges (32, 64), length-1
    // sequences (32, 33; 64; 0), one sequence over three chunks (1..90), a ragged last chunk.
    {{3, 100, 3, 16, 32, 32}, {{5, 27, 1, 1, 30, 36}, {64, 1, 35}, {1, 90, 9}}},
    // P, N off the grid; a row that is one sequence.
    {{2, 37, 2, 8, 5, 8}, {{3, 5, 1, 1, 6, 21}, {37}}},
    // Three 64-row tiles in a 136-long chunk (fp64 tiles are 64 x 64), off the grid. Row 0: a start on a
    // tile edge (64: the (64, 0) C.B tile lies before every row's start), chunk 0's state from 131 (two
    // row tiles without a dS_out term), chunk 1 reached by the entering state for 4 positions, a
    // sequence over chunks 1 and 2 (ragged). Row 1: starts at chunk edges (136, 137, 272), length 1 at
    // 136. Row 2: a start on a tile's last row (63: chunk 0's state from there; the (64, 0) tiles needed).
    {{3, 300, 2, 80, 72, 136}, {{10, 54, 66, 1, 9, 160}, {136, 1, 135, 28}, {63, 237}}},
    // L < Q; Q = 1.
    {{1, 20, 2, 16, 16, 64}, {{7, 1, 12}}},
    {{1, 6, 2, 16, 16, 1}, {{2, 1, 3}}},
};

// dx, ddt, da, dBm, dCm, dinit of <gy, y> + <gf, final state> by autograd
// through ssd_sequential with starts st (dinit through a zero initial state
// when there is none; all zeros without gy and gf).
std::vector<at::Tensor> reference_grads(const SsdCase& k, const SsdInputs& in, const at::Tensor& gy,
                                        const at::Tensor& gf, const at::Tensor& st) {
  auto init = in.init.defined() ? in.init : torch::zeros({k.B, k.H, k.P, k.N}, in.x.options());
  std::vector<at::Tensor> v;
  for (const auto& t : {in.x, in.dt, in.a, in.Bm, in.Cm, init}) v.push_back(t.clone().requires_grad_(true));
  std::vector<at::Tensor> g(v.size());
  if (gy.defined() || gf.defined()) {
    const SsdResult r = ssd_sequential(v[0], v[1], v[2], v[3], v[4], v[5], st);
    auto loss = torch::zeros({}, in.x.options());
    if (gy.defined()) loss = loss + (r.y * gy).sum();
    if (gf.defined()) loss = loss + (r.state * gf).sum();
    g = torch::autograd::grad({loss}, v, {}, false, false, /*allow_unused=*/true);
  }
  for (size_t i = 0; i < g.size(); ++i)
    if (!g[i].defined()) g[i] = torch::zeros_like(v[i]);
  return g;
}

}  // namespace

// Packed rows, forward: the tiled kernels with sequence starts give the naive
// kernels' y, final state and whole scratch (cb, the masked chunk states, the
// entering states), and ssd_sequential's / ssd_chunked's results with the
// same starts; on the 16 grid the automatic choice is now the tiled path.
TEST(CudaEmulatedSsdTiled, PackedRowsForward) {
  torch::manual_seed(25);
  double worst_naive = 0, worst_ref = 0;
  for (const auto& [k, rows] : kPacked)
    for (bool with_init : {false, true}) {
      const at::Tensor st = testutil::starts_of(rows);
      ASSERT_EQ(st.size(0), k.B);
      ASSERT_EQ(st.size(1), k.L);
      const std::string what = k.str() + " init=" + std::to_string(with_init);
      const SsdInputs in = ssd_inputs(k, with_init);
      const EmuForward t = emu_forward<double>(k, in, SsdKernels::tiled, st);
      const EmuForward n = emu_forward<double>(k, in, SsdKernels::naive, st);
      const SsdResult seq = ssd_sequential(in.x, in.dt, in.a, in.Bm, in.Cm, in.init, st);
      const SsdResult chk = ssd_chunked(in.x, in.dt, in.a, in.Bm, in.Cm, k.Q, in.init, st);
      const double dn = std::max({rel(t.y, n.y), rel(t.fin, n.fin), rel(t.scratch, n.scratch)});
      const double dr = std::max({rel(t.y, seq.y), rel(t.fin, seq.state), rel(t.y, chk.y), rel(t.fin, chk.state)});
      EXPECT_LT(dn, 1e-12) << what;
      EXPECT_LT(dr, 1e-12) << what;
      worst_naive = std::max(worst_naive, dn), worst_ref = std::max(worst_ref, dr);
      if (cuda::ssd_tiled_fits(cuda::make_ssd_shape(k.B, k.L, k.H, k.P, k.N, k.Q))) {
        const EmuForward a = emu_forward<double>(k, in, SsdKernels::automatic, st);
        EXPECT_EQ(rel(a.scratch, t.scratch), 0.0) << what << ": the automatic choice with starts is not the tiled one";
        EXPECT_EQ(rel(a.y, t.y), 0.0) << what;
      }
    }
  std::cout << "[ tiled fp64, starts ] max rel diff vs naive (y, final state, scratch) " << worst_naive
            << ", vs ssd_sequential / ssd_chunked " << worst_ref << "\n";
}

// Packed rows, backward: every gradient of the tiled backward with sequence
// starts against the naive one and autograd through ssd_sequential with the
// same starts, with either upstream gradient absent (or both), with and
// without init, and with dx, dBm, dinit not requested.
TEST(CudaEmulatedSsdTiled, PackedRowsBackward) {
  torch::manual_seed(26);
  const char* names[] = {"dx", "ddt", "da", "dBm", "dCm", "dinit"};
  double worst_naive = 0, worst_ref = 0;
  for (const auto& [k, rows] : kPacked)
    for (bool with_init : {false, true})
      for (auto [with_gy, with_gf, skip] : {std::tuple{true, true, false}, {true, false, false}, {false, true, false},
                                            {true, true, true}, {false, false, false}}) {
        // The naive backward and the reference are slow in emulation at Q = 136: there both upstream
        // gradients, everything requested with init, dx, dBm, dinit not requested without.
        if (k.Q > 64 && !(with_gy && with_gf && skip != with_init)) continue;
        const at::Tensor st = testutil::starts_of(rows);
        const SsdInputs in = ssd_inputs(k, with_init);
        auto gy = with_gy ? torch::randn_like(in.x) : at::Tensor();
        auto gf = with_gf ? torch::randn({k.B, k.H, k.P, k.N}, in.x.options()) : at::Tensor();
        const auto t = emu_backward(k, in, gy, gf, skip, SsdKernels::tiled, st);
        const auto n = emu_backward(k, in, gy, gf, skip, SsdKernels::naive, st);
        const auto r = reference_grads(k, in, gy, gf, st);
        for (size_t i = 0; i < t.size(); ++i) {
          const std::string what = k.str() + " init=" + std::to_string(with_init) + " gy=" + std::to_string(with_gy) +
                                   " gf=" + std::to_string(with_gf) + " skip=" + std::to_string(skip) + " " + names[i];
          const double dn = rel(t[i], n[i]);
          EXPECT_LT(dn, 1e-12) << what;
          worst_naive = std::max(worst_naive, dn);
          if (skip && (i == 0 || i == 3 || i == 5)) {
            EXPECT_TRUE(torch::all(t[i] == 7.0).item<bool>()) << what << ": not requested, written";
            continue;
          }
          const double dr = rel(t[i], r[i]);
          EXPECT_LT(dr, 1e-10) << what;
          worst_ref = std::max(worst_ref, dr);
        }
      }
  std::cout << "[ tiled fp64, starts ] backward: max rel diff vs naive " << worst_naive
            << ", vs autograd through ssd_sequential " << worst_ref << "\n";
}

// Packed rows in fp32 through the emulated 3xTF32 tile products, forward and
// every gradient, against the fp64 naive kernels with the same starts.
TEST(CudaEmulatedSsdTiled, PackedRowsFp32With3xTf32) {
  torch::manual_seed(27);
  double worst = 0;
  for (const auto& [k, rows] : {kPacked[0], kPacked[2]}) {
    const at::Tensor st = testutil::starts_of(rows);
    const SsdInputs in = ssd_inputs(k, true);
    auto gy = torch::randn_like(in.x), gf = torch::randn({k.B, k.H, k.P, k.N}, in.x.options());
    const EmuForward t = emu_forward<float>(k, in, SsdKernels::tiled, st);
    const EmuForward n = emu_forward<double>(k, in, SsdKernels::naive, st);
    std::vector<double> d{rel(t.y, n.y), rel(t.fin, n.fin)};
    const auto tg = emu_backward<float>(k, in, gy, gf, false, SsdKernels::tiled, st);
    const auto ng = emu_backward<double>(k, in, gy, gf, false, SsdKernels::naive, st);
    for (size_t i = 0; i < tg.size(); ++i) d.push_back(rel(tg[i], ng[i]));
    for (size_t i = 0; i < d.size(); ++i) EXPECT_LT(d[i], 1e-4) << k.str() << " output " << i;
    worst = std::max(worst, *std::max_element(d.begin(), d.end()));
  }
  std::cout << "[ tiled fp32, starts ] max rel diff of y, the final state and every gradient vs naive fp64 " << worst
            << "\n";
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

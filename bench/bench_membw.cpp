// Read bandwidth of this machine, the bound of batch-1 decode (docs/benchmarks.md):
//  1. GB/s of summing a block of S MB again and again (cache-resident up to the
//     L3 size, DRAM beyond);
//  2. the outer-weights case of H-Net decode: a block A (the outer stages'
//     weights) read every iteration and a block B (the main network's weights)
//     read every k-th one, B with plain loads or with prefetchnta ahead; GB/s of A;
//  3. the same per-byte weight traffic as the GEMVs of H-Net decode on the issue #3
//     config (8 outer Mamba-2 layers at d 256 every byte, the 6-layer d 384 main
//     network every k-th byte): linear_rows on one row (row kernel, and the
//     4-row block kernel) vs a plain read of the same matrices one call each,
//     interleaved; the gap to the read is the GEMV's own cost.
// Usage: bench_membw [--threads 0] [--sizes 1,4,12,16,64] [--a-mb 13.6] [--b-mb 42] [--every 6] [--reps 30]
// Prints one JSON line per measurement.
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "core/forward_context.h"
#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/runtime.h"
#include "kernels/cpu/dense/linear_rows.h"

using namespace dynarch;
using nlohmann::json;

namespace {

// Sum of n floats (n a multiple of 32), split over the threads; `nta`: prefetchnta 2 KB ahead.
float sum(const float* a, int64_t n, bool nta) {
  const int64_t blocks = n / 32;
  std::vector<float> part(at::get_num_threads(), 0.f);
  at::parallel_for(0, blocks, 1024, [&](int64_t b0, int64_t b1) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t b = b0; b < b1; ++b) {
      const float* p = a + b * 32;
      if (nta && b + 16 < b1) _mm_prefetch(reinterpret_cast<const char*>(p + 512), _MM_HINT_NTA),
                              _mm_prefetch(reinterpret_cast<const char*>(p + 528), _MM_HINT_NTA);
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + 8));
      s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + 16));
      s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (float v : t) part[at::get_thread_num()] += v;
  });
  float s = 0;
  for (float v : part) s += v;
  return s;
}

std::vector<float> block(double mb) { return std::vector<float>(int64_t(mb * (1 << 20) / 4) / 32 * 32, 1.f); }

double seconds(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Part 3: the decode GEMV sequence (shapes (out, in) of configs/hnet_bench.json).
void decode_weights(int reps, int every) {
  at::NoGradGuard no_grad;  // linear_rows is the GEMV only without autograd
  auto mats = [](std::vector<std::pair<int64_t, int64_t>> shapes, int layers) {
    std::vector<at::Tensor> w;
    for (int l = 0; l < layers; ++l)
      for (auto [o, i] : shapes) w.push_back(at::randn({o, i}) * 0.02);
    return w;
  };
  auto outer = mats({{1168, 256}, {256, 512}}, 8), main = mats({{1152, 384}, {384, 384}, {2048, 384}, {384, 1024}}, 6);
  for (auto& w : mats({{256, 256}}, 4)) outer.push_back(w);  // routing q, k; residual projection; LM head
  auto bytes = [](const std::vector<at::Tensor>& ws) {
    double b = 0;
    for (auto& w : ws) b += w.numel() * 4.0;
    return b;
  };
  volatile float sink = 0;
  const char* names[] = {"linear_rows", "linear_rows_block_kernel", "read"};
  double t[3] = {0, 0, 0};
  std::map<int64_t, at::Tensor> xs;  // one input row per width, made before timing
  for (auto* ws : {&outer, &main})
    for (auto& w : *ws) xs.emplace(w.size(1), at::ones({1, w.size(1)}));
  auto pass = [&](int mode, const std::vector<at::Tensor>& ws) {
    std::optional<BlockGemvScope> block;
    if (mode == 1) block.emplace();
    for (auto& w : ws) {
      if (mode < 2) sink = sink + linear_rows(xs.at(w.size(1)), w).data_ptr<float>()[0];
      else sink = sink + sum(w.data_ptr<float>(), w.numel() / 32 * 32, false);
    }
  };
  for (int r = 0; r < reps; ++r)
    for (int mode = 0; mode < 3; ++mode) {  // interleaved: the host's bandwidth drifts within seconds
      // (round 0 is a warm-up)
      auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < every; ++k) {
        pass(mode, outer);
        if (k == 0) pass(mode, main);
      }
      if (r > 0) t[mode] += seconds(t0);
    }
  const double per_byte = bytes(outer) + bytes(main) / every;
  for (int mode = 0; mode < 3; ++mode)
    std::cout << json{{"bench", "decode_weights"}, {"mode", names[mode]}, {"outer_mb", bytes(outer) / 1e6},
                      {"main_mb", bytes(main) / 1e6}, {"every", every},
                      {"gb_per_s", per_byte * (reps - 1) * every / t[mode] / 1e9},
                      {"decoded_bytes_per_s", (reps - 1) * every / t[mode]}, {"threads", num_threads()}}.dump()
              << std::endl;
}

int run(int argc, char** argv) {
  int threads = 0, reps = 30, every = 6;
  double a_mb = 13.6, b_mb = 42;
  std::vector<double> sizes = {1, 4, 12, 16, 64};
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_membw")) {
    if (k == "--threads") threads = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--every") every = std::stoi(v);
    else if (k == "--a-mb") a_mb = std::stod(v);
    else if (k == "--b-mb") b_mb = std::stod(v);
    else if (k == "--sizes") {
      sizes.clear();
      std::stringstream ss(v);
      for (std::string x; std::getline(ss, x, ',');) sizes.push_back(std::stod(x));
    } else throw UserError("unknown option " + k);
  }
  check(reps >= 1 && every >= 1 && a_mb > 0 && b_mb > 0, "bench_membw: --reps, --every, --a-mb, --b-mb must be > 0");
  set_threads(threads);
  volatile float sink = 0;
  for (double mb : sizes) {
    check(mb > 0, "bench_membw: --sizes must be > 0");
    auto a = block(mb);
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      sink = sink + sum(a.data(), a.size(), false);
      best = std::min(best, seconds(t0));
    }
    std::cout << json{{"bench", "read"}, {"mb", mb}, {"gb_per_s", a.size() * 4 / best / 1e9},
                      {"threads", num_threads()}}.dump() << std::endl;
  }
  auto a = block(a_mb), b = block(b_mb);
  for (int mode = 0; mode < 3; ++mode) {  // 0: A alone; 1: B with plain loads; 2: B with prefetchnta
    double ta = 0;
    for (int r = 0; r < reps * every; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      sink = sink + sum(a.data(), a.size(), false);
      ta += seconds(t0);
      if (mode > 0 && r % every == 0) sink = sink + sum(b.data(), b.size(), mode == 2);
    }
    const char* name[] = {"a_alone", "b_plain", "b_prefetchnta"};
    std::cout << json{{"bench", "outer_weights"}, {"mode", name[mode]}, {"a_mb", a_mb}, {"b_mb", b_mb},
                      {"every", every}, {"a_gb_per_s", double(a.size()) * 4 * reps * every / ta / 1e9},
                      {"threads", num_threads()}}.dump() << std::endl;
  }
  decode_weights(reps, every);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench_main(argc, argv, run); }

// mHC kernels (issue #4): forward+backward time of the fused ops against their
// plain tensor-op references, measured in the same run; one JSON line per case.
// Usage: bench_sinkhorn [--threads N] [--reps R] [--only CASE] [--iters 20]
// Cases: sinkhorn, hc_pre_mix, hc_post_res, hc_post_res_vs_matmul, mhc_project,
//        mhc_merge_pre_vs_chain, merge_backward_wide, skinny_gemm (the last two: AVX-512 hosts)
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/runtime.h"
#include "kernels/cpu/gemm/bmm.h"
#include "kernels/cpu/streams/stream_mix.h"
#include "kernels/cpu/streams/mhc_input.h"
#include "kernels/cpu/gemm/skinny_gemm.h"
#include "kernels/cpu/streams/sinkhorn.h"
#include "kernels/cpu/streams/stream_rows.h"

using namespace dynarch;
using nlohmann::json;

namespace {

using Op = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Forward alone (grad mode on, as in training) and forward + backward with a
// fixed upstream gradient, fused op vs reference. The two are timed in
// alternation so that both see the same load on this shared machine, and the
// best of `reps` (after one warm-up) is reported: the least disturbed figure.
json compare(const Op& fused, const Op& ref, const std::vector<at::Tensor>& inputs, int reps) {
  std::vector<at::Tensor> in;
  for (auto& x : inputs) in.push_back(x.detach().clone().requires_grad_(true));
  auto G = torch::randn_like(fused(in).detach());
  const std::vector<std::pair<std::string, Op>> ops = {{"fused", fused}, {"reference", ref}};
  std::map<std::string, double> best;
  for (int r = 0; r <= reps; ++r)
    for (auto& [name, op] : ops) {
      auto t0 = std::chrono::steady_clock::now();
      op(in);
      const double fwd = ms_since(t0);
      for (auto& x : in) x.mutable_grad() = at::Tensor();
      t0 = std::chrono::steady_clock::now();
      torch::autograd::backward({op(in)}, {G});
      const double fb = ms_since(t0);
      if (r == 0) continue;  // warm-up
      for (auto [key, v] : {std::pair{name + "_fwd_ms", fwd}, {name + "_fwd_bwd_ms", fb}})
        best[key] = best.count(key) ? std::min(best[key], v) : v;
    }
  json j(best);
  j["speedup_fwd"] = best["reference_fwd_ms"] / best["fused_fwd_ms"];
  j["speedup_fwd_bwd"] = best["reference_fwd_bwd_ms"] / best["fused_fwd_bwd_ms"];
  return j;
}

}  // namespace

static int run(int argc, char** argv) {
  int threads = 0, reps = 10;
  std::string only;
  SinkhornOptions so;  // 20 iterations, eps 1e-6
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_sinkhorn")) {
    if (k == "--threads") threads = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--only") only = v;
    else if (k == "--iters") so.iters = std::stoi(v);
    else throw UserError("unknown option " + k);
  }
  set_threads(threads);
  torch::manual_seed(0);
  const int64_t n = 4;
  // Runs one case unless --only names another.
  auto emit = [&](json head, const std::function<json()>& body) {
    if (!only.empty() && head["case"] != only) return;
    head["threads"] = num_threads();
    head.update(body());
    std::cout << head.dump() << std::endl;
  };

  for (int64_t T : {4096, 32768}) {
    Op f = [&](const std::vector<at::Tensor>& v) { return sinkhorn(v[0], so); };
    Op r = [&](const std::vector<at::Tensor>& v) { return sinkhorn_reference(v[0], so); };
    emit({{"case", "sinkhorn"}, {"T", T}, {"n", n}, {"iters", so.iters}},
         [&] { return compare(f, r, {torch::randn({T, n, n}) * 2}, reps); });
  }

  const int64_t T = 4096;
  for (int64_t D : {256, 512}) {
    auto X = torch::randn({T, n, D}), y = torch::randn({T, D});
    auto pre = torch::rand({T, n}), post = torch::rand({T, n}) * 2, R = torch::rand({T, n, n}) / n;
    auto phi = torch::randn({n * n + 2 * n, n * D}) * 0.02;
    json shape{{"T", T}, {"n", n}, {"D", D}};
    auto with = [&](const char* name) {
      json h = shape;
      h["case"] = name;
      return h;
    };
    emit(with("hc_pre_mix"), [&] { return compare([](const std::vector<at::Tensor>& v) { return hc_pre_mix(v[0], v[1]); },
                                     [](const std::vector<at::Tensor>& v) { return hc_pre_mix_reference(v[0], v[1]); },
                                     {X, pre}, reps); });
    emit(with("hc_post_res"),
         [&] { return compare([](const std::vector<at::Tensor>& v) { return hc_post_res(v[0], v[1], v[2], v[3]); },
                 [](const std::vector<at::Tensor>& v) { return hc_post_res_reference(v[0], v[1], v[2], v[3]); },
                 {X, R, post, y}, reps); });
    // The obvious unfused form through at::matmul (one small GEMM per token on 1.13).
    emit(with("hc_post_res_vs_matmul"),
         [&] { return compare([](const std::vector<at::Tensor>& v) { return hc_post_res(v[0], v[1], v[2], v[3]); },
                 [](const std::vector<at::Tensor>& v) {
                   return at::matmul(v[1], v[0]) + v[2].unsqueeze(-1) * v[3].unsqueeze(1);
                 },
                 {X, R, post, y}, reps); });
    emit(with("mhc_project"),
         [&] { return compare([](const std::vector<at::Tensor>& v) { return mhc_project(v[0], v[1], 1e-6); },
                 [](const std::vector<at::Tensor>& v) { return mhc_project_reference(v[0], v[1], 1e-6); },
                 {X, phi}, reps); });
  }
  // The fused merge + input pass of an mHC sub-layer (mhc_merge_pre) against the
  // previous path: hc_post_res, then mhc_pre on its output (both fused ops). One
  // output: the sums of W X (W fixed: X gets a dense gradient, as from the next
  // sub-layer), u, pre, post, Z.
  for (int64_t D : {384, 768}) {
    const int64_t Tm = 2048, K = n * n + 2 * n;
    auto Xp = torch::randn({Tm, n, D}), y = torch::randn({Tm, D});
    auto post = torch::rand({Tm, n}) * 2, R = torch::rand({Tm, n, n}) / n;
    auto phi = torch::randn({K, n * D}) * 0.02, bias = torch::randn({K}), alpha = torch::full({3}, 0.5);
    auto W = torch::randn({Tm, n, D});
    auto sums = [W](const at::Tensor& X, const MhcPre& p) {
      return at::stack({(X * W).sum(), p.u.sum(), p.pre.sum(), p.post.sum(), p.Z.sum()});
    };
    emit({{"case", "mhc_merge_pre_vs_chain"}, {"T", Tm}, {"n", n}, {"D", D}}, [&] {
      return compare(
          [&](const std::vector<at::Tensor>& v) {
            auto m = mhc_merge_pre(v[0], v[1], v[2], v[3], v[4], v[5], v[6], 1e-6, 1e-6);
            return sums(m.X, m.p);
          },
          [&](const std::vector<at::Tensor>& v) {
            auto X = hc_post_res(v[0], v[1], v[2], v[3]);
            return sums(X, mhc_pre(X, v[4], v[5], v[6], 1e-6, 1e-6));
          },
          {Xp, R, post, y, phi, bias, alpha}, reps);
    });
  }
  // The n = 4 merge backward of one token (rows in L2, 64 tokens cycled): the
  // 32-register build (stream_rows_wide.cpp) against the portable one.
  for (int64_t D : {384, 1024}) {
    if (!stream_rows_wide()) break;
    const int64_t Tw = 64;
    auto Xp = torch::randn({Tw, n, D}), R = torch::rand({Tw, n, n}), post = torch::rand({Tw, n}), y = torch::randn({Tw, D});
    auto G = torch::randn({Tw, n, D}), dxp = torch::empty({Tw, n, D}), dR = torch::empty({Tw, n, n});
    auto dpost = torch::empty({Tw, n}), dy = torch::empty({Tw, D});
    const Merge<float> m{Xp.data_ptr<float>(), R.data_ptr<float>(), post.data_ptr<float>(), y.data_ptr<float>()};
    auto us_per_token = [&](bool wide) {
      double best = 1e30;
      for (int r = 0; r <= reps; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        for (int rep = 0; rep < 20; ++rep)
          for (int64_t t = 0; t < Tw; ++t) {
            float *a = dxp.data_ptr<float>() + t * n * D, *b = dR.data_ptr<float>() + t * n * n;
            float *c = dpost.data_ptr<float>() + t * n, *d = dy.data_ptr<float>() + t * D;
            const float* g = G.data_ptr<float>() + t * n * D;
            if (wide) merge_token_backward_4f_wide(m, t, D, g, a, b, c, d);
            else merge_token_backward_n<4, float, false>(m, t, D, g, a, b, c, d);
          }
        if (r > 0) best = std::min(best, 1e3 * ms_since(t0) / (20 * Tw));
      }
      return best;
    };
    emit({{"case", "merge_backward_wide"}, {"n", n}, {"D", D}}, [&] {
      const double a = us_per_token(false), b = us_per_token(true);
      return json{{"portable_us_per_token", a}, {"wide_us_per_token", b}, {"speedup", a / b}};
    });
  }
  // The skinny GEMMs of the fused input op, per 16-token block as the op runs them:
  // the AVX-512 kernels (skinny_gemm.h) against the BLAS calls they replace, on one
  // thread (the op runs one block per thread). GFLOP/s = 2·T·K·n·D per product.
  for (int64_t D : {384, 1024, 1536}) {
    if (!skinny_gemm_available(24)) break;
    const int64_t Tg = 1024, K = 24, nD = n * D, B = 16;
    auto X = torch::randn({Tg, nD}), phi = torch::randn({K, nD}), Gr = torch::randn({Tg, K});
    auto dX = torch::zeros({Tg, nD}), raw = torch::zeros({Tg, K}), dphi = torch::zeros({K, nD});
    const float *px = X.data_ptr<float>(), *pphi = phi.data_ptr<float>(), *pg = Gr.data_ptr<float>();
    float *pdx = dX.data_ptr<float>(), *praw = raw.data_ptr<float>(), *pdphi = dphi.data_ptr<float>();
    auto best_ms = [&](const std::function<void()>& f) {
      double best = 1e30;
      for (int r = 0; r <= reps; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        f();
        if (r > 0) best = std::min(best, ms_since(t0));
      }
      return best;
    };
    emit({{"case", "skinny_gemm"}, {"T", Tg}, {"n", n}, {"D", D}, {"block", B}}, [&] {
      const double gf = 2.0 * Tg * K * nD / 1e6;  // MFLOP per product -> GFLOP/s = gf / ms
      PackedPhi packed;
      std::map<std::string, double> ms = {
          {"project_blas", best_ms([&] {
             for (int64_t t = 0; t < Tg; t += B)
               gemm_rowmajor<float>(false, true, B, K, nD, px + t * nD, nD, pphi, nD, 0.f, praw + t * K, K);
           })},
          {"project_skinny", best_ms([&] {
             pack_phi(pphi, K, nD, packed);
             for (int64_t t = 0; t < Tg; t += B) skinny_project(B, px + t * nD, packed, praw + t * K);
           })},
          {"expand_blas", best_ms([&] {
             for (int64_t t = 0; t < Tg; t += B)
               gemm_rowmajor<float>(false, false, B, nD, K, pg + t * K, K, pphi, nD, 1.f, pdx + t * nD, nD);
           })},
          {"expand_skinny", best_ms([&] {
             for (int64_t t = 0; t < Tg; t += B) skinny_expand_add(B, nD, K, pg + t * K, pphi, pdx + t * nD);
           })},
          {"dphi_blas_whole", best_ms([&] { at::mm_out(dphi, Gr.t(), X); })},
          {"dphi_skinny", best_ms([&] {
             for (int64_t t = 0; t < Tg; t += B) skinny_dphi_add(B, nD, K, pg + t * K, px + t * nD, pdphi);
           })}};
      json j;
      for (auto& [k, v] : ms) j[k + "_gflops"] = gf / v;
      j["speedup_project"] = ms["project_blas"] / ms["project_skinny"];
      j["speedup_expand"] = ms["expand_blas"] / ms["expand_skinny"];
      j["speedup_dphi"] = ms["dphi_blas_whole"] / ms["dphi_skinny"];
      return j;
    });
  }
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run); }

// CUDA kernels of issue #16 against their plain tensor-op references on the
// same GPU (the eager-PyTorch baseline): forward + backward time at the
// shapes of the workloads; one JSON line per case.
// Usage: bench_cuda_kernels [--reps R] [--only CASE]
// Cases: ema_scan, causal_conv, sinkhorn, hc_pre_mix, hc_post_res, ssd_forward (forward only),
// ssd_forward_backward, ssd_packed (the scan on packed rows vs the same rows padded, both tiled),
// ssd_tiled (the scan's naive vs tiled kernels, with matmul rates for MFU).
// Exits 2 with a message when no CUDA device is visible (always in a CPU build).
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <map>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "kernels/cpu/chunk/ema_scan.h"
#include "kernels/cpu/mamba/causal_conv.h"
#include "kernels/cpu/streams/sinkhorn.h"
#include "kernels/cpu/streams/stream_mix.h"
#include "model/layers/packing.h"
#if DYNARCH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/mamba/ssd_scan_cuda.h"
#include "kernels/cuda/mamba/ssd_scan_launch.h"
#endif

using namespace dynarch;
using nlohmann::json;

namespace {

using Op = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// One timed op: its name in the JSON keys and its inputs.
struct Timed {
  std::string name;
  const Op* op;
  std::vector<at::Tensor> inputs;
};

// Best of `reps` (after one warm-up) of each op's forward + backward with a
// fixed upstream gradient, synchronised; the ops alternate. Keys <name>_fwd_bwd_ms.
json time_fwd_bwd(const std::vector<Timed>& runs, int reps) {
  struct Ready {
    std::vector<at::Tensor> in, diff;
    at::Tensor G;
  };
  std::vector<Ready> ready;
  for (const auto& run : runs) {
    Ready r;
    for (auto& x : run.inputs) r.in.push_back(x.detach().clone().requires_grad_(x.is_floating_point()));
    for (auto& x : r.in)
      if (x.requires_grad()) r.diff.push_back(x);
    r.G = torch::randn_like((*run.op)(r.in).detach());
    ready.push_back(r);
  }
  std::map<std::string, double> best;
  for (int rep = 0; rep <= reps; ++rep)
    for (size_t i = 0; i < runs.size(); ++i) {
      torch::cuda::synchronize();
      auto t0 = std::chrono::steady_clock::now();
      auto out = (*runs[i].op)(ready[i].in);
      torch::autograd::grad({out}, ready[i].diff, {ready[i].G});
      torch::cuda::synchronize();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const std::string k = runs[i].name + "_fwd_bwd_ms";
      if (rep > 0) best[k] = best.count(k) ? std::min(best[k], ms) : ms;
    }
  return json(best);
}

// A CUDA kernel against its reference on the same inputs.
json compare(const Op& fast, const Op& ref, const std::vector<at::Tensor>& inputs, int reps) {
  json j = time_fwd_bwd({{"cuda", &fast, inputs}, {"reference", &ref, inputs}}, reps);
  j["speedup"] = j["reference_fwd_bwd_ms"].get<double>() / j["cuda_fwd_bwd_ms"].get<double>();
  return j;
}

#if DYNARCH_CUDA
// The chunked SSD forward in eager tensor ops (as model/layers/mamba2.cpp's ssd_chunked,
// with at::matmul: the CPU one calls the CPU bmm kernel), L a multiple of Q: the GPU baseline.
at::Tensor eager_ssd_chunked(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a, const at::Tensor& Bm,
                             const at::Tensor& Cm, int64_t Q) {
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2), P = x.size(3), N = Bm.size(2), nc = L / Q;
  auto xc = x.view({B, nc, Q, H, P}).permute({0, 3, 1, 2, 4});
  auto dtc = dt.view({B, nc, Q, H}).permute({0, 3, 1, 2});
  auto Bc = Bm.view({B, nc, Q, N}), Cc = Cm.view({B, nc, Q, N});
  auto cum = (dtc * a.view({1, H, 1, 1})).cumsum(-1);
  auto Xb = xc * dtc.unsqueeze(-1);
  auto seg = cum.unsqueeze(-1) - cum.unsqueeze(-2);  // (B,H,c,Q,Q): cum_i - cum_j
  auto causal = torch::ones({Q, Q}, x.options().dtype(at::kBool)).tril();
  auto Lmat = at::exp(seg.masked_fill(~causal, -INFINITY));
  auto Y = at::matmul(at::matmul(Cc, Bc.transpose(-1, -2)).unsqueeze(1) * Lmat, Xb);
  auto decay = at::exp(cum.narrow(-1, Q - 1, 1) - cum);
  auto Sblk = at::matmul((Xb * decay.unsqueeze(-1)).transpose(-1, -2), Bc.unsqueeze(1));  // (B,H,c,P,N)
  auto chunk_decay = at::exp(cum.select(-1, Q - 1));
  auto S = at::zeros({B, H, P, N}, x.options());
  std::vector<at::Tensor> S_in;
  for (int64_t c = 0; c < nc; ++c) {
    S_in.push_back(S);
    S = chunk_decay.select(2, c).view({B, H, 1, 1}) * S + Sblk.select(2, c);
  }
  auto Yoff = at::matmul(Cc.unsqueeze(1), at::stack(S_in, 2).transpose(-1, -2)) * at::exp(cum).unsqueeze(-1);
  return (Y + Yoff).permute({0, 2, 3, 1, 4}).reshape({B, L, H, P});
}
#endif

at::Tensor randn(at::IntArrayRef s) { return torch::randn(s, at::TensorOptions().device(at::kCUDA)); }
at::Tensor rand(at::IntArrayRef s) { return torch::rand(s, at::TensorOptions().device(at::kCUDA)); }

#if DYNARCH_CUDA
// Best of `reps` timed calls of fn (after one warm-up), synchronised.
double best_ms(const std::function<void()>& fn, int reps) {
  double best = 1e300;
  for (int r = 0; r <= reps; ++r) {
    torch::cuda::synchronize();
    auto t0 = std::chrono::steady_clock::now();
    fn();
    torch::cuda::synchronize();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::min(best, ms);
  }
  return best;
}

// TFLOP/s of an n x n x n matmul in `dtype` (fp32 with TF32 allowed when tf32): the
// tensor-core rate the SSD kernels are measured against (MFU).
double matmul_tflops(at::ScalarType dtype, bool tf32, int reps) {
  const int64_t n = 8192;
  auto a = torch::randn({n, n}, at::TensorOptions().device(at::kCUDA).dtype(dtype)), b = torch::randn_like(a);
  const auto before = at::globalContext().float32MatmulPrecision();
  at::globalContext().setFloat32MatmulPrecision(tf32 ? "high" : "highest");
  const double ms = best_ms([&] { at::mm(a, b); }, reps);
  at::globalContext().setFloat32MatmulPrecision(before);
  return 2.0 * n * n * n / (ms * 1e9);
}

// The SSD chunked scan at the shape, fp32, through the raw launchers
// (buffers allocated once): forward and forward + backward with the naive and
// the tiled kernels. FLOPs counted as the chunked algorithm's useful work, the
// causal halves halved: per position Q N / 2 (C.B) + H (2 N P + Q P / 2)
// multiply-adds (chunk states, C.S_in, the in-chunk product); forward +
// backward counted as 3x the forward (the usual convention).
json ssd_tiled_case(int reps) {
  const int64_t B = 8, L = 8192, H = 32, P = 64, N = 128, Q = 256;
  auto x = randn({B, L, H, P}), dt = rand({B, L, H}) * 0.1, a = -rand({H}) - 0.5;
  auto Bm = randn({B, L, N}), Cm = randn({B, L, N}), gy = randn({B, L, H, P});
  auto y = torch::empty_like(x), fin = torch::empty({B, H, P, N}, x.options());
  auto dx = torch::empty_like(x), ddt = torch::empty_like(dt), da = torch::empty_like(a);
  auto dB = torch::empty_like(Bm), dC = torch::empty_like(Cm);
  const auto s0 = cuda::make_ssd_shape(B, L, H, P, N, Q);
  auto fscratch = torch::empty({cuda::ssd_scratch_elems(s0)}, x.options());
  auto bscratch = torch::empty({cuda::ssd_backward_scratch_elems(s0)}, x.options());
  auto f = [](const at::Tensor& t) { return t.data_ptr<float>(); };
  const double fwd_gflop = 2.0 * B * L * (Q * N / 2.0 + H * (2.0 * N * P + Q * P / 2.0)) / 1e9;
  json j;
  // tiled_1xtf32: one TF32 pass per product (~1e-3): what the 3xTF32 split costs.
  for (auto [name, kernels] : {std::pair<std::string, cuda::SsdKernels>{"naive", cuda::SsdKernels::naive},
                               {"tiled", cuda::SsdKernels::tiled},
                               {"tiled_1xtf32", cuda::SsdKernels::tiled_tf32}}) {
    auto s = s0;
    s.kernels = kernels;
    auto fwd = [&] {
      cuda::check_launch(cuda::ssd_forward_chunked<float>(f(x), f(dt), f(a), f(Bm), f(Cm), nullptr, nullptr, f(y),
                                                          f(fin), f(fscratch), s, cuda::stream()),
                         "bench ssd forward");
    };
    auto bwd = [&] {
      cuda::check_launch(cuda::ssd_backward_chunked<float>(f(x), f(dt), f(a), f(Bm), f(Cm), nullptr, nullptr, f(gy),
                                                           nullptr, f(dx), f(ddt), f(da), f(dB), f(dC), nullptr,
                                                           f(bscratch), s, cuda::stream()),
                         "bench ssd backward");
    };
    const int r = kernels == cuda::SsdKernels::naive ? std::min(reps, 2) : reps;  // the naive path is slow
    const double fms = best_ms(fwd, r), fbms = best_ms([&] { fwd(), bwd(); }, r);
    j[name + "_fwd_ms"] = fms;
    j[name + "_fwd_bwd_ms"] = fbms;
    j[name + "_fwd_tflops"] = fwd_gflop / fms;
    j[name + "_fwd_bwd_tflops"] = 3 * fwd_gflop / fbms;
  }
  j["fwd_gflop"] = fwd_gflop;
  j["fwd_speedup"] = j["naive_fwd_ms"].get<double>() / j["tiled_fwd_ms"].get<double>();
  j["fwd_bwd_speedup"] = j["naive_fwd_bwd_ms"].get<double>() / j["tiled_fwd_bwd_ms"].get<double>();
  j["target_fwd_bwd_ms_h200"] = 5.75;  // the official Triton kernel (eager PyTorch: 50.9 ms)
  const double tf32 = matmul_tflops(at::kFloat, true, reps), bf16 = matmul_tflops(at::kBFloat16, false, reps);
  j["matmul_tf32_tflops"] = tf32;
  j["matmul_bf16_tflops"] = bf16;
  j["matmul_fp32_tflops"] = matmul_tflops(at::kFloat, false, reps);
  // The tiled path runs 3 TF32 products per fp32 one: its tensor-core share of the TF32 rate.
  j["tiled_fwd_mfu_3xtf32"] = 3 * j["tiled_fwd_tflops"].get<double>() / tf32;
  j["tiled_fwd_bwd_mfu_3xtf32"] = 3 * j["tiled_fwd_bwd_tflops"].get<double>() / tf32;
  j["device"] = std::string(at::cuda::getCurrentDeviceProperties()->name);
  j["shape"] = {{"B", B}, {"L", L}, {"H", H}, {"P", P}, {"N", N}, {"chunk", Q}};
  return j;
}
#endif

}  // namespace

static int run_all(int argc, char** argv) {
  int reps = 5;
  std::string only;
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_cuda_kernels")) {
    if (k == "--reps")
      reps = std::stoi(v);
    else if (k == "--only")
      only = v;
    else
      throw UserError("bench_cuda_kernels: unknown option " + k);
  }
#if DYNARCH_CUDA
  check(torch::cuda::is_available(), "bench_cuda_kernels: no CUDA device visible");
#else
  check(torch::cuda::is_available(),
        "bench_cuda_kernels: no CUDA device visible (a CPU build: configure with -DDYNARCH_CUDA=ON)");
#endif
  torch::manual_seed(0);
  auto run = [&](const std::string& name, json shape, const Op& fast, const Op& ref, std::vector<at::Tensor> in) {
    if (!only.empty() && only != name) return;
    json j = compare(fast, ref, in, reps);
    j["bench"] = "cuda_kernels";
    j["case"] = name;
    j["shape"] = shape;
    std::cout << j.dump() << std::endl;
  };
  // Dechunk of the 1-stage L H-Net: 8 rows x ~2048 chunks x d 1024 (fp32 scan).
  run(
      "ema_scan", {{"B", 8}, {"M", 2048}, {"D", 1024}}, [](auto& v) { return ema_scan(v[0], torch::sigmoid(v[1])); },
      [](auto& v) { return ema_scan_reference(v[0], torch::sigmoid(v[1])); },
      {randn({8, 2048, 1024}), randn({8, 2048})});
  // Mamba-2 conv of the L encoder: d_model 1024, expand 2, d_state 128 -> 2304 channels, 8 x 8192.
  run(
      "causal_conv", {{"B", 8}, {"L", 8192}, {"C", 2304}, {"K", 4}},
      [](auto& v) { return causal_conv1d_silu(v[0], v[1], v[2]); },
      [](auto& v) { return causal_conv1d_silu_reference(v[0], v[1], v[2]); },
      {randn({8, 8192, 2304}), randn({2304, 1, 4}) * 0.5, randn({2304})});
  // mHC n = 4 maps of one sub-layer at 8 x 2048 tokens, 20 iterations.
  run(
      "sinkhorn", {{"T", 16384}, {"n", 4}, {"iters", 20}}, [](auto& v) { return sinkhorn(v[0]); },
      [](auto& v) { return sinkhorn_reference(v[0]); }, {randn({16384, 4, 4})});
  run(
      "hc_pre_mix", {{"T", 16384}, {"n", 4}, {"D", 1024}}, [](auto& v) { return hc_pre_mix(v[0], v[1]); },
      [](auto& v) { return hc_pre_mix_reference(v[0], v[1]); }, {randn({16384, 4, 1024}), rand({16384, 4})});
  run(
      "hc_post_res", {{"T", 16384}, {"n", 4}, {"D", 1024}}, [](auto& v) { return hc_post_res(v[0], v[1], v[2], v[3]); },
      [](auto& v) { return hc_post_res_reference(v[0], v[1], v[2], v[3]); },
      {randn({16384, 4, 1024}), rand({16384, 4, 4}), rand({16384, 4}), randn({16384, 1024})});
#if DYNARCH_CUDA
  // SSD scan forward alone at the shape: 8 x 8192, 32 heads x 64, d_state 128, chunk 256;
  // the fused forward vs the eager tensor-op chunked form on the same GPU, and their
  // largest difference relative to the largest output (a correctness check at full size).
  if (only.empty() || only == "ssd_forward") {
    const int64_t B = 8, L = 8192, H = 32, P = 64, N = 128, Q = 256;
    auto x = randn({B, L, H, P}), dt = rand({B, L, H}) * 0.1, a = -rand({H}) - 0.5;
    auto Bm = randn({B, L, N}), Cm = randn({B, L, N});
    torch::NoGradGuard ng;
    std::map<std::string, double> best;
    for (int r = 0; r <= reps; ++r)
      for (bool fused : {true, false}) {
        torch::cuda::synchronize();
        auto t0 = std::chrono::steady_clock::now();
        if (fused)
          cuda::ssd_chunk_scan_forward(x, dt, a, Bm, Cm, Q);
        else
          eager_ssd_chunked(x, dt, a, Bm, Cm, Q);
        torch::cuda::synchronize();
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        const std::string k = fused ? "cuda_fwd_ms" : "reference_fwd_ms";
        if (r > 0) best[k] = best.count(k) ? std::min(best[k], ms) : ms;
      }
    json j(best);
    j["speedup"] = best["reference_fwd_ms"] / best["cuda_fwd_ms"];
    auto yf = cuda::ssd_chunk_scan_forward(x, dt, a, Bm, Cm, Q).first, ye = eager_ssd_chunked(x, dt, a, Bm, Cm, Q);
    j["max_rel_diff"] = ((yf - ye).abs().max() / ye.abs().max()).item<double>();
    j["bench"] = "cuda_kernels";
    j["case"] = "ssd_forward";
    j["shape"] = {{"B", B}, {"L", L}, {"H", H}, {"P", P}, {"N", N}, {"chunk", Q}};
    std::cout << j.dump() << std::endl;
  }
  // The same shape, forward + backward: the autograd Function (fused forward, chunked
  // backward kernels) vs autograd through the eager chunked form.
  {
    const int64_t B = 8, L = 8192, H = 32, P = 64, N = 128, Q = 256;
    run(
        "ssd_forward_backward", {{"B", B}, {"L", L}, {"H", H}, {"P", P}, {"N", N}, {"chunk", Q}},
        [Q](auto& v) { return cuda::ssd_chunk_scan(v[0], v[1], v[2], v[3], v[4], Q).first; },
        [Q](auto& v) { return eager_ssd_chunked(v[0], v[1], v[2], v[3], v[4], Q); },
        {randn({B, L, H, P}), rand({B, L, H}) * 0.1, -rand({H}) - 0.5, randn({B, L, N}), randn({B, L, N})});
  }
  // Packed rows (Mamba2::forward_packed on CUDA): an inner stage's 8 rows of unequal chunk
  // counts, the scan over them packed into one row with sequence starts vs the same rows
    // padded to the longest (dt = 0 on the padding, as Mamba2 with lengths). Forward +
  // backward of the CUDA scan both ways, both on the tiled kernels (P, N multiples of 16;
  // the tiled kernels take the starts); max_rel_diff: packed vs padded outputs on the
  // valid positions.
  if (only.empty() || only == "ssd_packed") {
    const std::vector<int64_t> lens{2048, 1800, 1500, 1400, 1200, 1000, 800, 600};
    const int64_t B = (int64_t)lens.size(), Lmax = 2048, H = 32, P = 64, N = 128, Q = 256;
    auto len = torch::tensor(lens, at::kLong).cuda();
    const auto pk = packing_from_lengths(len, Lmax);
    auto valid = (at::arange(Lmax, len.options()).view({1, Lmax}) < len.view({B, 1})).to(at::kFloat).unsqueeze(-1);
    auto x = randn({B, Lmax, H, P}), dt = rand({B, Lmax, H}) * 0.1 * valid, a = -rand({H}) - 0.5;
    auto Bm = randn({B, Lmax, N}), Cm = randn({B, Lmax, N});
    Op packed = [Q](auto& v) { return cuda::ssd_chunk_scan(v[0], v[1], v[2], v[3], v[4], Q, {}, v[5]).first; };
    Op padded = [Q](auto& v) { return cuda::ssd_chunk_scan(v[0], v[1], v[2], v[3], v[4], Q).first; };
    const std::vector<at::Tensor> pin{pack(x, pk), pack(dt, pk), a, pack(Bm, pk), pack(Cm, pk),
                                      pk.starts_on(x.device())};
    const std::vector<at::Tensor> qin{x, dt, a, Bm, Cm};
    check(pk.seq_start_device.is_same(pin[5]), "bench_cuda_kernels: the packing's device starts were copied again");
    json j = time_fwd_bwd({{"packed", &packed, pin}, {"padded", &padded, qin}}, reps);
    j["speedup"] = j["padded_fwd_bwd_ms"].get<double>() / j["packed_fwd_bwd_ms"].get<double>();
    {
      torch::NoGradGuard ng;
      auto yp = packed(pin), yq = pack(padded(qin), pk);
      j["max_rel_diff"] = ((yp - yq).abs().max() / yq.abs().max()).item<double>();
    }
    j["bench"] = "cuda_kernels";
    j["case"] = "ssd_packed";
    j["shape"] = {{"lengths", lens}, {"T", pk.total()}, {"Lmax", Lmax}, {"H", H}, {"P", P}, {"N", N}, {"chunk", Q}};
    std::cout << j.dump() << std::endl;
  }
  if (only.empty() || only == "ssd_tiled") {
    json j = ssd_tiled_case(reps);
    j["bench"] = "cuda_kernels";
    j["case"] = "ssd_tiled";
    std::cout << j.dump() << std::endl;
  }
#endif
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run_all); }

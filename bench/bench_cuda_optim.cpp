// One optimizer step on the GPU (AdamW::clip_and_step: global gradient norm,
// clipping, AdamW) for the parameters of a model, fused (kernels/cuda/optim:
// a few multi-tensor launches, one host read) against the tensor-op reference
// (KernelMode::reference: ~3 ops a parameter for the norm, one read, a scale
// pass, ~9 ops a parameter for the update) on the same GPU. Gradients are
// random (N(0, 1e-3^2)). One JSON line per case: ms per step (best and median
// of --reps after a warm-up, synchronised), and the effective bandwidth of the
// fused form's minimal traffic (fp32: read g for the norm; read p, g, m, v and
// write p, m, v for the update = 32 bytes a parameter) at each one's time.
// Cases: clip_active (--max-norm below the norm), clip_off (max_norm 0: norm
// measured, nothing scaled).
// Usage: bench_cuda_optim [--config configs/hnet_bench.json] [--reps R] [--max-norm X]
// Exits 2 with a message when no CUDA device is visible (always in a CPU build).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "model/lm.h"
#include "train/adamw.h"

using namespace dynarch;
using nlohmann::json;

namespace {

// Best and median ms of `reps` timed clip_and_step calls after one warm-up,
// each from the same gradients (the reference clips them in place).
std::pair<double, double> time_steps(AdamW& opt, const std::vector<at::Tensor>& grads, double max_norm, int reps,
                                     bool reference) {
  std::vector<double> ms;
  for (int r = 0; r <= reps; ++r) {
    std::optional<ReferenceKernelsScope> ops;
    if (reference) ops.emplace();
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < grads.size(); ++i) opt.params()[i].param.mutable_grad().copy_(grads[i]);
    }
    torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    opt.clip_and_step(1e-4, max_norm);
    torch::cuda::synchronize();
    if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return {*std::min_element(ms.begin(), ms.end()), median(ms)};
}

}  // namespace

static int run_all(int argc, char** argv) {
  std::string config = "configs/hnet_bench.json";
  int reps = 20;
  double max_norm = 1.0;
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_cuda_optim")) {
    if (k == "--config") config = v;
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--max-norm") max_norm = std::stod(v);
    else throw UserError("bench_cuda_optim: unknown option " + k);
  }
  check(reps >= 1, "bench_cuda_optim: --reps must be >= 1");
  check(torch::cuda::is_available(), "bench_cuda_optim: no CUDA device visible (needs a -DDYNARCH_CUDA=ON build)");
  torch::manual_seed(0);
  ByteLM model(ModelConfig::from_file(config));
  model.to(at::Device(at::kCUDA, 0));
  auto infos = model.param_infos();
  int64_t numel = 0;
  std::vector<at::Tensor> grads;
  for (auto& p : infos) {
    grads.push_back(torch::randn_like(p.param) * 1e-3);
    p.param.mutable_grad() = grads.back().clone();
    numel += p.param.numel();
  }
  // Two optimizers over the same parameters and gradients (separate moments):
  // the values drift apart, the work per step does not.
  AdamW fused(infos, {}), reference(infos, {});
  const double norm = fused.clip_and_step(1e-4, 0.0);
  const double bytes = 32.0 * (double)numel;
  for (const auto& [name, mn] : {std::pair<std::string, double>{"clip_active", max_norm}, {"clip_off", 0.0}}) {
    const auto [fb, fm] = time_steps(fused, grads, mn, reps, false);
    const auto [rb, rm] = time_steps(reference, grads, mn, reps, true);
    json j{{"bench", "cuda_optim"},
           {"case", name},
           {"config", config},
           {"parameters", numel},
           {"tensors", (int64_t)infos.size()},
           {"grad_norm", norm},
           {"max_norm", mn},
           {"clipped", mn > 0 && norm > mn},
           {"fused_ms", fb},
           {"fused_median_ms", fm},
           {"reference_ms", rb},
           {"reference_median_ms", rm},
           {"speedup", rb / fb},
           {"fused_GBps", bytes / (fb * 1e-3) / 1e9},
           {"reference_GBps", bytes / (rb * 1e-3) / 1e9}};
    std::cout << j.dump() << std::endl;
  }
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run_all); }

// The CUDA mHC sub-layer input (mhc_pre, mhc_project through their CUDA hooks)
// against the tensor-op references on the same GPU: forward + backward time at
// 8 x 2048 tokens, n = 4, D = 1024, fp32; one JSON line per case, with the
// largest difference of the outputs relative to the reference's largest value.
// Usage: bench_cuda_mhc [--reps R] [--only mhc_pre|mhc_project]
// Exits 2 with a message when no CUDA device is visible (always in a CPU build).
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <map>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "kernels/cpu/streams/mhc_input.h"
#include "kernels/cpu/streams/stream_mix.h"

using namespace dynarch;
using nlohmann::json;

namespace {

using MultiOp = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;

// Best of `reps` (after one warm-up) of forward + backward of every output with
// fixed upstream gradients, synchronised; the two ops alternate.
json compare(const MultiOp& fast, const MultiOp& ref, const std::vector<at::Tensor>& inputs, int reps) {
  std::vector<at::Tensor> in;
  for (auto& x : inputs) in.push_back(x.detach().clone().requires_grad_(true));
  std::vector<at::Tensor> G;
  double diff = 0;
  {
    auto a = fast(in), b = ref(in);
    for (size_t i = 0; i < a.size(); ++i) {
      G.push_back(torch::randn(a[i].sizes(), a[i].options()));
      diff = std::max(diff, ((a[i] - b[i]).abs().max() / b[i].abs().max()).item<double>());
    }
  }
  std::map<std::string, double> best;
  for (int r = 0; r <= reps; ++r)
    for (auto& [name, op] : {std::pair<std::string, const MultiOp*>{"cuda", &fast}, {"reference", &ref}}) {
      torch::cuda::synchronize();
      auto t0 = std::chrono::steady_clock::now();
      auto out = (*op)(in);
      torch::autograd::grad(out, in, G);
      torch::cuda::synchronize();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const std::string k = name + "_fwd_bwd_ms";
      if (r > 0) best[k] = best.count(k) ? std::min(best[k], ms) : ms;
    }
  json j(best);
  j["speedup"] = best["reference_fwd_bwd_ms"] / best["cuda_fwd_bwd_ms"];
  j["max_rel_diff"] = diff;
  return j;
}

at::Tensor randn(at::IntArrayRef s) { return torch::randn(s, at::TensorOptions().device(at::kCUDA)); }

std::vector<at::Tensor> fields(const MhcPre& p) { return {p.u, p.pre, p.post, p.Z}; }

}  // namespace

static int run_all(int argc, char** argv) {
  int reps = 5;
  std::string only;
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_cuda_mhc")) {
    if (k == "--reps")
      reps = std::stoi(v);
    else if (k == "--only")
      only = v;
    else
      throw UserError("bench_cuda_mhc: unknown option " + k);
  }
  check(torch::cuda::is_available(), "bench_cuda_mhc: no CUDA device visible (needs a -DDYNARCH_CUDA=ON build)");
  torch::manual_seed(0);
  const int64_t T = 8 * 2048, n = 4, D = 1024, K = n * n + 2 * n;
  auto report = [&](const std::string& name, json j, json shape) {
    j["bench"] = "cuda_mhc";
    j["case"] = name;
    j["shape"] = shape;
    j["dtype"] = "float32";
    std::cout << j.dump() << std::endl;
  };
  const double eps = 1e-6;
  if (only.empty() || only == "mhc_pre") {
    MultiOp fast = [&](auto& v) { return fields(mhc_pre(v[0], v[1], v[2], v[3], eps, eps)); };
    MultiOp ref = [&](auto& v) { return fields(mhc_pre_reference(v[0], v[1], v[2], v[3], eps, eps)); };
    auto alpha = torch::full({3}, 0.01, at::TensorOptions().device(at::kCUDA));
    report("mhc_pre", compare(fast, ref, {randn({T, n, D}), randn({K, n * D}) * 0.02, randn({K}), alpha}, reps),
           {{"T", T}, {"n", n}, {"D", D}});
  }
  // The learned collapse's projection (K = n) at the same shape.
  if (only.empty() || only == "mhc_project") {
    MultiOp fast = [&](auto& v) { return std::vector<at::Tensor>{mhc_project(v[0], v[1], eps)}; };
    MultiOp ref = [&](auto& v) { return std::vector<at::Tensor>{mhc_project_reference(v[0], v[1], eps)}; };
    report("mhc_project", compare(fast, ref, {randn({T, n, D}), randn({n, n * D}) * 0.02}, reps),
           {{"T", T}, {"n", n}, {"D", D}, {"K", n}});
  }
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run_all); }

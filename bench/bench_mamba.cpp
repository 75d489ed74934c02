// One Mamba-2 layer, forward + backward, fused core vs the op-by-op chunked
// path (the layer before the fused core), interleaved in one run so that load
// from other processes hits both alike. Prints one JSON line of median ms.
// Usage: bench_mamba [--d 256] [--batch 4] [--seq-len 1024] [--reps 7] [--dtype fp32|bf16] [--threads N] [--path both]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>

#include "core/compat.h"
#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/runtime.h"
#include "kernels/cpu/mamba/mamba_core.h"
#include "model/layers/mamba2.h"

using namespace dynarch;

static int run(int argc, char** argv) {
  int64_t d = 256, B = 4, L = 1024, reps = 7;
  int threads = 0;
  std::string dtype = "fp32", path = "both";
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_mamba")) {
    if (k == "--d") d = std::stoll(v);
    else if (k == "--batch") B = std::stoll(v);
    else if (k == "--seq-len") L = std::stoll(v);
    else if (k == "--reps") reps = std::stoll(v);
    else if (k == "--dtype") dtype = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--path") path = v;  // fused | reference | core | both (for profilers)
    else throw UserError("unknown option " + k);
  }
  set_threads(threads);
  torch::manual_seed(0);
  Mamba2 m(d, 64, 4, 2, 32, 64);
  auto x = torch::randn({B, L, d}).requires_grad_(true);
  auto w = torch::randn({B, L, d});
  const std::string before = loadavg();
  // Wall and process CPU time per (path, pass): with --threads 1 CPU time is
  // robust to time slicing by other processes on this shared machine.
  std::map<std::string, std::vector<double>> wall, cpu;
  auto time = [&](bool fused, bool backward) {
    if (path == "core" || (path != "both" && fused != (path == "fused"))) return;
    const std::string key = std::string(backward ? "fwd_bwd_" : "fwd_") + (fused ? "fused" : "reference");
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    {
      compat::AutocastScope ac(dtype == "bf16");
      auto y = fused ? m.forward(x, nullptr, 0) : m.forward_reference(x, nullptr, 0);
      if (backward) (y.to(at::kFloat) * w).sum().backward();
    }
    cpu[key].push_back(1e3 * (cpu_seconds() - c0));
    wall[key].push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  // The fused core alone (between in_proj and out_proj), on a fixed input.
  auto zx = (torch::randn({B, L, m.in_proj->weight.size(0)}) * 0.5).requires_grad_(true);
  auto gz = torch::randn({B, L, m.d_inner});
  const MambaDims dims{m.d_inner, m.d_state, m.nheads, m.headdim, m.d_conv};
  auto time_core = [&] {
    if (path == "reference") return;
    const double c0 = cpu_seconds();
    auto r = mamba_core(zx, m.conv1d->weight, m.conv1d->bias, m.dt_bias, m.A_log, m.D, m.norm->weight, dims);
    const double c1 = cpu_seconds();
    (r.g * gz).sum().backward();
    cpu["core_fwd"].push_back(1e3 * (c1 - c0));
    cpu["core_fwd_bwd"].push_back(1e3 * (cpu_seconds() - c0));
  };
  time(true, true);
  time(false, true);
  time_core();
  wall.clear();
  cpu.clear();
  for (int64_t r = 0; r < reps; ++r) {
    for (bool fused : {true, false}) {
      torch::NoGradGuard ng;
      time(fused, false);
    }
    for (bool fused : {true, false}) time(fused, true);
    time_core();
  }
  nlohmann::json out{{"d_model", d}, {"batch", B}, {"seq_len", L}, {"dtype", dtype}, {"threads", num_threads()}};
  for (auto& [k, v] : wall) out[k + "_ms"] = median(v);
  for (auto& [k, v] : cpu) out[k + "_cpu_ms"] = median(v);
  if (path == "both") out["speedup_fwd_bwd_cpu"] = median(cpu["fwd_bwd_reference"]) / median(cpu["fwd_bwd_fused"]);
  out["loadavg_before"] = before;
  out["loadavg_after"] = loadavg();
  std::cout << out.dump() << std::endl;
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run); }

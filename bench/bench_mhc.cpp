// Step-time overhead of HC / mHC (n streams) over the plain residual on the same
// model: training steps (forward, backward, clipping, AdamW) of each variant,
// interleaved in rounds so that machine drift hits all variants alike.
//   bench_mhc [--config M.json] [--n 4] [--batch 8] [--seq-len 512] [--steps 3] [--rounds 3]
//             [--dtype bf16|fp32] [--variants plain,mhc,hc[,mhc_unmerged,mhc_blas]] [--decode 0]
//             [--device auto|cpu|cuda|cuda:N]
// Prints one JSON line per variant and a summary line with the overheads.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "core/forward_context.h"
#include "bench/lm_bench.h"
#include "core/device.h"
#include "core/error.h"
#include "core/runtime.h"
#include "model/lm.h"
#include "kernels/cpu/gemm/skinny_gemm.h"

using namespace dynarch;
using nlohmann::json;

static int run(int argc, char** argv) {
  std::string config, dtype = "bf16", variants = "plain,mhc,hc", device_spec = "auto";
  int64_t n = 4, batch = 8, seq = 512, steps = 3, rounds = 3, decode = 0;
  int threads = 0;
  for (const auto& [a, v] : option_pairs(argc, argv, "bench_mhc")) {
    if (a == "--config") config = v;
    else if (a == "--n") n = std::stoll(v);
    else if (a == "--batch") batch = std::stoll(v);
    else if (a == "--seq-len") seq = std::stoll(v);
    else if (a == "--steps") steps = std::stoll(v);
    else if (a == "--rounds") rounds = std::stoll(v);
    else if (a == "--dtype") dtype = v;
    else if (a == "--variants") variants = v;
    else if (a == "--decode") decode = std::stoll(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--device") device_spec = v;
    else throw UserError("unknown option " + a);
  }
  const auto device = resolve_device(device_spec);
  DeviceScope on_device(device);
  set_threads(threads);
  json base = config.empty() ? default_bench_config().to_json() : ModelConfig::from_file(config).to_json();
  std::vector<std::string> names;
  for (size_t p = 0; p <= variants.size();) {
    auto q = variants.find(',', p);
    if (q == std::string::npos) q = variants.size();
    names.push_back(variants.substr(p, q - p));
    p = q + 1;
  }
  const bool bf16 = dtype == "bf16";
  check(bf16 || dtype == "fp32", "--dtype must be bf16 or fp32");
  std::vector<std::shared_ptr<ByteLM>> models;
  for (auto& v : names) {
    json c = base;
    if (v != "plain") c["residual"] = json{{"type", v.rfind("mhc", 0) == 0 ? "mhc" : v}, {"n", n}};
    else c.erase("residual");
    torch::manual_seed(0);
    models.push_back(std::make_shared<ByteLM>(ModelConfig::from_json(c, "variant " + v)));
    models.back()->to(device);  // initialised on the CPU (the same weights on every device), then moved
  }
  torch::manual_seed(1);
  auto ids = torch::randint(0, 256, {batch, seq}, at::kLong).to(device);
  auto tg = torch::randint(0, 256, {batch, seq}, at::kLong).to(device);
  std::vector<std::vector<double>> times(names.size());
  // mhc_unmerged: mHC with each merge as its own hc_post_res pass (the path before mhc_merge_pre);
  // mhc_blas: mHC with BLAS instead of the AVX-512 skinny GEMMs (skinny_gemm.h).
  auto timed = [&](size_t v, int64_t k, int warm) {
    std::optional<SeparateMergeScope> sep;
    std::optional<BlasSkinnyScope> blas;
    if (names[v] == "mhc_unmerged") sep.emplace();
    if (names[v] == "mhc_blas") blas.emplace();
    return time_train_steps(*models[v], ids, tg, bf16, k, warm);
  };
  // Warm-up; on CUDA also each variant's step memory: the allocator's peak over a
  // step beyond what was held before it (every variant's weights stay resident).
  std::vector<double> step_gib(names.size(), -1.0);
  for (size_t v = 0; v < names.size(); ++v) {
    const int64_t before = allocated_memory_bytes(device);
    reset_peak_memory(device);
    timed(v, 1, 1);
    if (before >= 0) step_gib[v] = (double)(peak_memory_bytes(device) - before) / (1024.0 * 1024.0 * 1024.0);
  }
  // Odd rounds run the variants in reverse order, so that a drift within a round
  // does not always favour the same variant.
  for (int64_t r = 0; r < rounds; ++r)
    for (size_t i = 0; i < names.size(); ++i) {
      const size_t v = r % 2 ? names.size() - 1 - i : i;
      times[v].push_back(timed(v, steps, 0));
    }
  json summary{{"bench", "mhc_overhead"}, {"dtype", dtype}, {"n", n}, {"batch", batch}, {"seq_len", seq},
               {"threads", num_threads()}, {"device", device_name(device)}, {"layout", base["arch_layout"]}, {"d_model", base["d_model"]}};
  double plain_ms = 0;
  for (size_t v = 0; v < names.size(); ++v) {
    auto t = times[v];
    std::sort(t.begin(), t.end());
    const double ms = 1e3 * t[t.size() / 2];
    if (names[v] == "plain") plain_ms = ms;
    json line{{"variant", names[v]}, {"ms_per_step_median", ms}, {"ms_per_step_min", 1e3 * t.front()},
              {"params", models[v]->num_parameters()}, {"bytes_per_s", batch * seq / (ms / 1e3)}};
    if (step_gib[v] >= 0) line["step_peak_gib"] = step_gib[v];
    if (decode > 0) {
      auto dec = torch::randint(0, 256, {1, decode + 1}, at::kLong).to(device);
      line["decode_bytes_per_s_b1"] = time_decode(*models[v], dec, false);
    }
    std::cout << line.dump() << std::endl;
    summary["ms_" + names[v]] = ms;
  }
  // Overheads: ratio of the medians, and the median of the per-round ratios (each
  // against the plain run of the same round; steadier when the host drifts).
  const auto pi = std::find(names.begin(), names.end(), "plain") - names.begin();
  if (plain_ms > 0)
    for (size_t v = 0; v < names.size(); ++v) {
      if (names[v] == "plain") continue;
      summary["overhead_" + names[v]] = summary["ms_" + names[v]].get<double>() / plain_ms - 1.0;
      std::vector<double> ratios;
      for (int64_t r = 0; r < rounds; ++r) ratios.push_back(times[v][r] / times[pi][r] - 1.0);
      summary["paired_overhead_" + names[v]] = median(ratios);
    }
  summary["loadavg"] = read_loadavg();
  std::cout << summary.dump() << std::endl;
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run); }

// Packed vs padded inner H-Net stages (model/layers/packing.h): one training
// step (forward, loss with ratio terms, backward, clipping, AdamW) timed in the
// same run with PackingScope off and on, on real text whose rows compress
// unequally; prints bytes/s of each, their ratio and how much of the padded
// inner batch was padding, as one JSON line.
// Usage: bench_packing [--config configs/hnet_bench.json] [--data data/en/val.bin]
//                      [--batch 8] [--seq-len 512] [--steps 2] [--repeat 3]
//                      [--threads 0] [--dtype fp32|bf16] [--model RUN]
// --model RUN: trained weights (its config replaces --config), so that rows chunk
// as in use. Two copies of the model (same weights) take their steps
// interleaved, padded then packed, --repeat times; the medians are reported.
#include <torch/torch.h>

#include <iostream>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "model/hnet/hnet_stage.h"
#include "model/lm.h"
#include "run/checkpoint.h"

using namespace dynarch;
using nlohmann::json;

namespace {
// Per outer stage: inner rows' chunk counts (B) of this batch.
std::vector<at::Tensor> chunk_counts(ByteLM& m, const at::Tensor& ids) {
  torch::NoGradGuard ng;
  StageRecorder rec;
  m.forward(ids);
  std::vector<at::Tensor> c;
  for (auto& t : rec.traces) c.push_back(t.b.sum(1));
  return c;
}
}  // namespace

static int run(int argc, char** argv) {
  std::string cfg_path = "configs/hnet_bench.json", data = "data/en/val.bin", model_dir, dtype = "fp32";
  int64_t B = 8, L = 512, steps = 2, repeat = 3;
  int threads = 0;
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_packing")) {
    if (k == "--config") cfg_path = v;
    else if (k == "--data") data = v;
    else if (k == "--batch") B = std::stoll(v);
    else if (k == "--seq-len") L = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--repeat") repeat = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--dtype") dtype = v;
    else if (k == "--model") model_dir = v;
    else throw UserError("unknown option " + k);
  }
  check(dtype == "fp32" || dtype == "bf16", "--dtype must be fp32 or bf16");
  set_threads(threads);
  if (!model_dir.empty()) cfg_path = resolve_model_dir(model_dir) + "/config.json";
  auto cfg = ModelConfig::from_file(cfg_path);
  check(cfg.num_stages() >= 1, "bench_packing: the model needs at least one chunking stage");
  MappedFile f(data);
  ByteSpan span{std::shared_ptr<MappedFile>(&f, [](MappedFile*) {}), 0, f.size(), data};
  auto batch = windows_at(span, spread_offsets(span.size, L, B), L);
  // Two copies with the same weights: each takes the steps of one mode.
  auto make = [&] {
    torch::manual_seed(0);
    auto m = std::make_shared<ByteLM>(cfg);
    if (!model_dir.empty()) {
      auto trained = load_model(model_dir, c10::kCPU);
      torch::NoGradGuard ng;
      auto src = trained->named_parameters();
      for (auto& kv : m->named_parameters()) kv.value().copy_(src[kv.key()]);
    }
    return m;
  };
  auto padded = make(), packed = make();
  json out{{"config", cfg_path}, {"data", data}, {"batch", B}, {"seq_len", L}, {"steps", steps},
           {"repeat", repeat}, {"dtype", dtype}, {"threads", num_threads()},
           {"model", model_dir.empty() ? "initialisation" : model_dir}, {"loadavg_before", loadavg()}};
  // How unequal the rows are: per inner stage, chunks per row and the share of
  // the padded (B, max) batch that is padding.
  json stages = json::array();
  for (auto& c : chunk_counts(*padded, batch.inputs)) {
    const double sum = c.sum().item<double>(), mx = c.max().item<double>();
    stages.push_back({{"chunks_min", c.min().item<int64_t>()}, {"chunks_max", (int64_t)mx},
                      {"chunks_mean", sum / B}, {"padding_fraction", 1.0 - sum / (B * mx)}});
  }
  out["inner_stages"] = stages;
  const bool bf16 = dtype == "bf16";
  std::vector<double> tp, tk, cp, ck, ratio;  // wall and process CPU seconds per step
  for (int64_t r = 0; r < repeat; ++r) {
    {
      PackingScope off(false);
      double c = 0;
      tp.push_back(time_train_steps(*padded, batch.inputs, batch.targets, bf16, steps, r == 0 ? 1 : 0, &c));
      cp.push_back(c);
    }
    {
      PackingScope on(true);
      double c = 0;
      tk.push_back(time_train_steps(*packed, batch.inputs, batch.targets, bf16, steps, r == 0 ? 1 : 0, &c));
      ck.push_back(c);
    }
    ratio.push_back(tp.back() / tk.back());
  }
  // Same weights after the same steps: the two modes computed the same thing.
  double wdiff = 0;
  {
    auto a = padded->named_parameters(), b = packed->named_parameters();
    for (auto& kv : a) wdiff = std::max(wdiff, (kv.value() - b[kv.key()]).abs().max().item<double>());
  }
  out["max_weight_diff_after_steps"] = wdiff;
  out["padded_bytes_per_s"] = B * L / median(tp);
  out["packed_bytes_per_s"] = B * L / median(tk);
  out["speedup_packed_over_padded"] = median(ratio);
  out["speedups"] = ratio;
  // CPU seconds per step: with --threads 1, the work itself (robust to other load).
  out["padded_cpu_s_per_step"] = median(cp);
  out["packed_cpu_s_per_step"] = median(ck);
  out["loadavg_after"] = loadavg();
  std::cout << out.dump() << std::endl;
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run); }

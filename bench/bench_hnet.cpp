// H-Net benchmark (issue #3): training bytes/s (fp32, bf16) on real text,
// teacher-forced decode bytes/s at batch 1 and 16, and the step time over an
// isotropic Transformer of equal FLOPs per byte, as one JSON line.
// Usage: bench_hnet [--config configs/hnet_bench.json] [--data data/en/val.bin]
//                   [--batch 4] [--seq-len 1024] [--steps 3] [--decode-bytes 256] [--model RUN]
//                   [--dtype fp32|bf16|both] [--train 1] [--decode 1] [--isotropic 1] [--repeat 1]
//                   [--decode-b16 1] [--decode-bf16-weights 1] [--decode-block-gemv 0] [--decode-unfused 0]
//                   [--device auto]
// --model RUN: trained weights (its config replaces --config) for decode and,
// copied into the trained H-Net, for the training timing (so that the main
// network sees as many chunks as in use; an initialised router cuts ~2x more).
// --repeat N runs the timings N times (interleaved H-Net / isotropic) and
// reports the median; /proc/loadavg is recorded before and after.
// --decode-block-gemv 1 also times batch-1 decode with the 4-row block GEMV
// (BlockGemvScope) in the same repetitions, for an A/B of the GEMV kernels;
// --decode-unfused 1 likewise with op-by-op Mamba-2 block steps (UnfusedStepScope).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

#include "core/forward_context.h"
#include "bench/lm_bench.h"
#include "core/device.h"
#include "core/error.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "train/lm_objective.h"
#include "kernels/cpu/dense/linear_rows.h"
#include "model/lm.h"
#include "run/checkpoint.h"

using namespace dynarch;
using nlohmann::json;


static int run(int argc, char** argv) {
  std::string cfg_path = "configs/hnet_bench.json", data = "data/en/val.bin", model_dir;
  int64_t B = 4, L = 1024, steps = 3, dec = 256, repeat = 1;
  int threads = 0;
  bool do_train = true, do_decode = true, do_iso = true, do_b16 = true, do_bf16w = true, do_block = false, do_unfused = false;
  std::string dtypes = "both", device_spec = "auto";
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_hnet")) {
    if (k == "--config") cfg_path = v;
    else if (k == "--data") data = v;
    else if (k == "--batch") B = std::stoll(v);
    else if (k == "--seq-len") L = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--decode-bytes") dec = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--model") model_dir = v;  // trained weights: boundaries as in use
    else if (k == "--dtype") dtypes = v;
    else if (k == "--train") do_train = v != "0";
    else if (k == "--decode") do_decode = v != "0";
    else if (k == "--isotropic") do_iso = v != "0";  // 0: H-Net only (for profilers)
    else if (k == "--decode-b16") do_b16 = v != "0";
    else if (k == "--decode-bf16-weights") do_bf16w = v != "0";
    else if (k == "--decode-block-gemv") do_block = v != "0";
    else if (k == "--decode-unfused") do_unfused = v != "0";
    else if (k == "--repeat") repeat = std::stoll(v);
    else if (k == "--device") device_spec = v;
    else throw UserError("unknown option " + k);
  }
  const auto device = resolve_device(device_spec);
  DeviceScope on_device(device);
  set_threads(threads);
  if (!model_dir.empty()) cfg_path = resolve_model_dir(model_dir) + "/config.json";
  auto cfg = ModelConfig::from_file(cfg_path);
  MappedFile f(data);
  ByteSpan span{std::shared_ptr<MappedFile>(&f, [](MappedFile*) {}), 0, f.size(), data};
  auto windows = [&](int64_t n, int64_t len) {
    return windows_at(span, spread_offsets(span.size, len, n), len);
  };
  json out{{"config", cfg_path}, {"data", data}, {"batch", B}, {"seq_len", L}, {"threads", num_threads()},
           {"device", device_name(device)}};
  out["matmul_gflops_fp32"] = measure_matmul_gflops(false, 1024, 5, device);
  out["matmul_gflops_bf16"] = measure_matmul_gflops(true, 1024, 5, device);
  torch::manual_seed(0);
  ByteLM hnet(cfg);
  out["params"] = hnet.num_parameters();
  const double fpb = hnet.flops_per_byte(L);
  out["flops_per_byte_fwd"] = fpb;
  // Isotropic Transformer at the outer width with the closest FLOPs per byte.
  const int D = cfg.d_model[0], dint = 3 * D, heads = std::max(1, D / 64);
  auto iso_cfg = [&](int n) {
    return ModelConfig::from_json(json{{"arch_layout", {"T" + std::to_string(n)}}, {"d_model", {D}},
                                       {"d_intermediate", {dint}},
                                       {"attn_cfg", {{"num_heads", {heads}}, {"rotary_emb_dim", {std::min(32, D / heads)}}}}},
                                  "isotropic baseline");
  };
  int n_iso = 1;
  while (ByteLM(iso_cfg(n_iso + 1)).flops_per_byte(L) <= fpb) ++n_iso;
  ByteLM iso(iso_cfg(n_iso));
  iso.to(device);
  out["isotropic_layout"] = "T" + std::to_string(n_iso);
  out["isotropic_flops_per_byte_fwd"] = iso.flops_per_byte(L);
  auto batch = windows(B, L);
  out["loadavg_before"] = loadavg();
  torch::manual_seed(0);
  std::shared_ptr<ByteLM> trained = model_dir.empty() ? nullptr : load_model(model_dir, device);
  out["model"] = model_dir.empty() ? "initialisation" : model_dir;
  auto bytes_per_chunk = [](ByteLM& m, const at::Tensor& ids) {  // of this model on this text
    torch::NoGradGuard ng;
    StageRecorder stage_rec;
    auto& tr = stage_rec.traces;
    m.forward(ids);
    return (double)tr[0].b.numel() / tr[0].b.sum().item<double>();
  };
  for (bool bf16 : {false, true}) {
    const std::string tag = bf16 ? "bf16" : "fp32";
    if (!do_train || (dtypes != "both" && dtypes != tag)) continue;
    torch::manual_seed(0);
    ByteLM h(cfg);
    h.to(device);
    if (trained) {  // trained routing: the main network sees chunks as in use
      torch::NoGradGuard ng;
      auto src = trained->named_parameters();
      for (auto& kv : h.named_parameters()) kv.value().copy_(src[kv.key()]);
    }
    const double bpc = bytes_per_chunk(h, batch.inputs);
    out["train_batch_bytes_per_chunk"] = bpc;
    // FLOPs/byte with the compression this router actually gives on the batch
    // (flops_per_byte_fwd assumes the target N = 6).
    const double fpb_actual = cfg.num_stages() == 1 ? h.flops_per_byte(L, {bpc}) : fpb;  // (stage 0 measured)
    out["flops_per_byte_fwd_at_batch_ratio"] = fpb_actual;
    std::vector<double> th, ti, ch, ci;
    for (int64_t r = 0; r < repeat; ++r) {
      double c = 0;
      th.push_back(time_train_steps(h, batch.inputs, batch.targets, bf16, steps, 1, &c));
      ch.push_back(c);
      if (!do_iso) continue;
      ti.push_back(time_train_steps(iso, batch.inputs, batch.targets, bf16, steps, 1, &c));
      ci.push_back(c);
    }
    // CPU seconds per step: with --threads 1, the work itself (robust to load).
    out["train_cpu_s_per_step_" + tag] = median(ch);
    out["train_bytes_per_s_" + tag] = B * L / median(th);
    if (!do_iso) continue;
    out["isotropic_train_cpu_s_per_step_" + tag] = median(ci);
    out["isotropic_train_bytes_per_s_" + tag] = B * L / median(ti);
    // Per repetition (same-run pairs), then the median ratio.
    std::vector<double> ratio;
    for (int64_t r = 0; r < repeat; ++r) ratio.push_back(th[r] / ti[r]);
    out["step_time_ratio_hnet_over_isotropic_" + tag] = median(ratio);
    // The same per forward FLOP per byte (the isotropic model has the largest
    // depth with FLOPs/byte <= the H-Net's, so it does up to one layer less).
    out["step_time_ratio_per_flop_" + tag] = median(ratio) * iso.flops_per_byte(L) / fpb;
    out["step_time_ratio_per_actual_flop_" + tag] = median(ratio) * iso.flops_per_byte(L) / fpb_actual;
    if (repeat > 1) out["step_time_ratios_" + tag] = ratio;
  }
  if (!do_decode) {
    out["loadavg_after"] = loadavg();
    std::cout << out.dump() << std::endl;
    return 0;
  }
  torch::manual_seed(0);
  auto h_fresh = trained ? nullptr : std::make_shared<ByteLM>(cfg);
  if (h_fresh) h_fresh->to(device);
  auto& h = trained ? *trained : *h_fresh;
  out["decode_text_bytes_per_chunk"] = bytes_per_chunk(h, windows(1, dec).inputs);
  std::vector<double> d1, d16, c1, c16, d1b, d1u;
  for (int64_t r = 0; r < repeat; ++r) {
    double c = 0;
    d1.push_back(time_decode(h, windows(1, dec).inputs, false, &c));
    c1.push_back(c);
    if (do_block) {
      BlockGemvScope block;
      d1b.push_back(time_decode(h, windows(1, dec).inputs, false));
    }
    if (do_unfused) {
      UnfusedStepScope unfused;
      d1u.push_back(time_decode(h, windows(1, dec).inputs, false));
    }
    if (!do_b16) continue;
    d16.push_back(time_decode(h, windows(16, dec / 2).inputs, false, &c));
    c16.push_back(c);
  }
  std::vector<double> d1w;  // bf16 weight copies (numerics change): reported apart
  for (int64_t r = 0; r < repeat && do_bf16w; ++r) {
    Bf16WeightsScope bf16_weights;
    d1w.push_back(time_decode(h, windows(1, dec).inputs, false));
  }
  if (do_bf16w) out["decode_bytes_per_s_b1_bf16_weights"] = median(d1w);
  out["decode_bytes_per_s_b1_fp32"] = median(d1);
  if (do_block) out["decode_bytes_per_s_b1_fp32_block_gemv"] = median(d1b);
  if (repeat > 1) out["decode_bytes_per_s_b1_fp32_runs"] = d1;
  if (repeat > 1 && do_block) out["decode_bytes_per_s_b1_fp32_block_gemv_runs"] = d1b;
  if (do_unfused) out["decode_bytes_per_s_b1_fp32_unfused"] = median(d1u);
  if (repeat > 1 && do_unfused) out["decode_bytes_per_s_b1_fp32_unfused_runs"] = d1u;
  if (do_b16) out["decode_bytes_per_s_b16_fp32"] = median(d16);
  // Bytes per CPU second: with --threads 1, robust to load from other processes.
  out["decode_bytes_per_cpu_s_b1_fp32"] = median(c1);
  if (do_b16) out["decode_bytes_per_cpu_s_b16_fp32"] = median(c16);
  out["loadavg_after"] = loadavg();
  std::cout << out.dump() << std::endl;
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run); }

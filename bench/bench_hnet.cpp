// H-Net benchmark (issue #3): training bytes/s (fp32, bf16) on real text,
// teacher-forced decode bytes/s at batch 1 and 16, and the step time over an
// isotropic Transformer of equal FLOPs per byte, as one JSON line.
// Usage: bench_hnet [--config configs/hnet_bench.json] [--data data/en/val.bin]
//                   [--batch 4] [--seq-len 1024] [--steps 3] [--decode-bytes 256] [--model RUN]
// --model RUN decodes with trained weights (its config replaces --config).
#include <torch/torch.h>

#include <chrono>
#include <iostream>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "infer/evaluate.h"
#include "model/lm.h"
#include "train/checkpoint.h"

using namespace dynarch;
using nlohmann::json;

int main(int argc, char** argv) {
  maybe_reexec_for_blas(argc, argv);
  try {
    std::string cfg_path = "configs/hnet_bench.json", data = "data/en/val.bin", model_dir;
    int64_t B = 4, L = 1024, steps = 3, dec = 256;
    int threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
      std::string k = argv[i], v = argv[i + 1];
      if (k == "--config") cfg_path = v;
      else if (k == "--data") data = v;
      else if (k == "--batch") B = std::stoll(v);
      else if (k == "--seq-len") L = std::stoll(v);
      else if (k == "--steps") steps = std::stoll(v);
      else if (k == "--decode-bytes") dec = std::stoll(v);
      else if (k == "--threads") threads = std::stoi(v);
      else if (k == "--model") model_dir = v;  // trained weights: boundaries as in use
      else throw UserError("unknown option " + k);
    }
    set_threads(threads);
    if (!model_dir.empty()) cfg_path = resolve_model_dir(model_dir) + "/config.json";
    auto cfg = ModelConfig::from_file(cfg_path);
    MappedFile f(data);
    ByteSpan span{std::shared_ptr<MappedFile>(&f, [](MappedFile*) {}), 0, f.size(), data};
    auto windows = [&](int64_t n, int64_t len) {
      return windows_at(span, spread_offsets(span.size, len, n), len);
    };
    json out{{"config", cfg_path}, {"data", data}, {"batch", B}, {"seq_len", L}, {"threads", num_threads()}};
    out["matmul_gflops_fp32"] = measure_matmul_gflops(false, 1024, 5);
    out["matmul_gflops_bf16"] = measure_matmul_gflops(true, 1024, 5);
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
    out["isotropic_layout"] = "T" + std::to_string(n_iso);
    out["isotropic_flops_per_byte_fwd"] = iso.flops_per_byte(L);
    auto batch = windows(B, L);
    for (bool bf16 : {false, true}) {
      const std::string tag = bf16 ? "bf16" : "fp32";
      torch::manual_seed(0);
      ByteLM h(cfg);
      const double th = time_train_steps(h, batch.inputs, batch.targets, bf16, steps, 1);
      const double ti = time_train_steps(iso, batch.inputs, batch.targets, bf16, steps, 1);
      out["train_bytes_per_s_" + tag] = B * L / th;
      out["isotropic_train_bytes_per_s_" + tag] = B * L / ti;
      out["step_time_ratio_hnet_over_isotropic_" + tag] = th / ti;
    }
    torch::manual_seed(0);
    auto hp = model_dir.empty() ? std::make_shared<ByteLM>(cfg) : load_model(model_dir);
    auto& h = *hp;
    out["model"] = model_dir.empty() ? "initialisation" : model_dir;
    {  // bytes per chunk of this model on the decode text
      torch::NoGradGuard ng;
      std::vector<StageTrace> tr;
      h.forward(windows(1, dec).inputs, nullptr, &tr);
      out["decode_text_bytes_per_chunk"] = (double)tr[0].b.numel() / tr[0].b.sum().item<double>();
    }
    out["decode_bytes_per_s_b1_fp32"] = time_decode(h, windows(1, dec).inputs, false);
    out["decode_bytes_per_s_b16_fp32"] = time_decode(h, windows(16, dec / 2).inputs, false);
    std::cout << out.dump() << std::endl;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}

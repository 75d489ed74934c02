#include "bench/lm_bench.h"

#include <torch/torch.h>

#include <chrono>

#include "core/compat.h"
#include "core/runtime.h"
#include "infer/evaluate.h"
#include "model/lm.h"
#include "train/adamw.h"

namespace dynarch {
using nlohmann::json;

ModelConfig default_bench_config() {
  return ModelConfig::from_json(json::parse(R"({
    "arch_layout": ["T6"], "d_model": [384], "d_intermediate": [1024],
    "attn_cfg": {"num_heads": [6], "rotary_emb_dim": [32], "window_size": [-1]}})"),
                                "bench config");
}

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

json run_lm_bench(const LmBenchOptions& o) {
  set_threads(o.threads);
  torch::manual_seed(0);
  json out;
  out["threads"] = num_threads();
  out["config"] = o.config.to_json();
  out["batch"] = o.batch;
  out["seq_len"] = o.seq_len;
  const double peak32 = measure_matmul_gflops(false, 1024, 5), peak16 = measure_matmul_gflops(true, 1024, 5);
  out["matmul_gflops_fp32"] = peak32;
  out["matmul_gflops_bf16"] = peak16;
  for (bool bf16 : {false, true}) {
    if ((bf16 && !o.bf16) || (!bf16 && !o.fp32)) continue;
    const std::string tag = bf16 ? "bf16" : "fp32";
    ByteLM model(o.config);
    out["params"] = model.num_parameters();
    const double fpb = model.flops_per_byte(o.seq_len);
    out["flops_per_byte_fwd"] = fpb;
    AdamW opt(model.param_infos(), AdamWOptions{});
    auto ids = torch::randint(0, 256, {o.batch, o.seq_len}, at::kLong);
    auto tg = torch::randint(0, 256, {o.batch, o.seq_len}, at::kLong);
    double t_total = 0;
    for (int64_t s = 0; s < o.warmup_steps + o.train_steps; ++s) {
      auto t0 = std::chrono::steady_clock::now();
      opt.zero_grad();
      at::Tensor loss;
      {
        compat::AutocastScope ac(bf16);
        loss = lm_loss(model.forward(ids), tg);
      }
      loss.backward();
      clip_grad_norm(opt.params(), 1.0);
      opt.step(1e-4);
      if (s >= o.warmup_steps) t_total += seconds_since(t0);
    }
    const double bps = o.batch * o.seq_len * o.train_steps / t_total;
    out["train_bytes_per_s_" + tag] = bps;
    out["train_ms_per_step_" + tag] = 1e3 * t_total / o.train_steps;
    out["train_mfu_" + tag] = 3.0 * fpb * bps / ((bf16 ? peak16 : peak32) * 1e9);
    // Decode at batch 1 on the step path.
    torch::NoGradGuard ng;
    compat::AutocastScope ac(bf16);
    model.eval();
    auto state = model.new_state(1);
    auto tok = at::tensor({kBOS}, at::kLong);
    model.step(tok, state);  // warm-up
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < o.decode_bytes; ++i) {
      auto logits = model.step(tok, state);
      tok = logits.argmax(-1);
    }
    out["decode_bytes_per_s_" + tag] = o.decode_bytes / seconds_since(t0);
  }
  return out;
}

}  // namespace dynarch

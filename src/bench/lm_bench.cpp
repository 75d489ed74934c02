#include "bench/lm_bench.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "core/compat.h"
#include "core/device.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "core/runtime.h"
#include "io/atomic_file.h"
#include "train/lm_objective.h"
#include "model/lm.h"
#include "model/hnet/ratio_loss.h"
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

std::vector<std::pair<std::string, std::string>> option_pairs(int argc, char** argv, const std::string& program) {
  const std::string usage = " (usage: the comment at the top of bench/" + program + ".cpp)";
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || k == "--help")
      throw UserError(program + ": expected --name value pairs, got " + k + usage);
    if (i + 1 >= argc) throw UserError(program + ": option " + k + " needs a value" + usage);
    out.emplace_back(k, argv[i + 1]);
  }
  return out;
}

int bench_main(int argc, char** argv, int (*run)(int, char**)) {
  maybe_reexec_for_blas(argc, argv);
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

double time_train_steps(ByteLM& model, const at::Tensor& ids, const at::Tensor& tg, bool bf16, int64_t steps,
                        int64_t warmup, double* cpu_s) {
  AdamW opt(model.param_infos(), AdamWOptions{});
  const auto targets = default_ratio_targets(model.config.num_stages());
  double total = 0, cpu = 0;
  model.train();
  for (int64_t s = 0; s < warmup + steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    opt.zero_grad();
    at::Tensor loss;
    StageRecorder stage_rec;
    auto& tr = stage_rec.traces;
    {
      compat::AutocastScope ac(bf16);
      loss = lm_loss(model.forward(ids), tg);
    }
    for (size_t i = 0; i < tr.size(); ++i) loss = loss + 0.03 * ratio_loss(tr[i].p, tr[i].b, tr[i].mask, targets[i]).loss;
    loss.backward();
    opt.clip_and_step(1e-4, 1.0);
    synchronize(model.device());
    if (s >= warmup) {
      total += seconds_since(t0);
      cpu += cpu_seconds() - c0;
    }
  }
  if (cpu_s) *cpu_s = cpu / steps;
  return total / steps;
}

double time_decode(ByteLM& model, const at::Tensor& inputs, bool bf16, double* cpu_bps) {
  torch::NoGradGuard ng;
  compat::AutocastScope ac(bf16);
  model.eval();
  const int64_t B = inputs.size(0), L = inputs.size(1);
  auto state = model.new_state(B);
  model.step(inputs.select(1, 0), state);  // warm-up byte
  auto t0 = std::chrono::steady_clock::now();
  const double c0 = cpu_seconds();
  for (int64_t t = 1; t < L; ++t) model.step(inputs.select(1, t), state);
  synchronize(model.device());
  if (cpu_bps) *cpu_bps = B * (L - 1) / (cpu_seconds() - c0);
  return B * (L - 1) / seconds_since(t0);
}

namespace {
// (rows, len) int64 byte windows on `device`: from `text` at evenly spread
// offsets (real text: an H-Net's router then chunks as in use), else random
// bytes drawn on the CPU (the same on every device).
at::Tensor bench_bytes(const std::string& text, int64_t rows, int64_t len, const c10::Device& device) {
  if (text.empty()) return torch::randint(0, 256, {rows, len}, at::kLong).to(device);
  auto out = at::empty({rows, len}, at::kLong);
  auto* p = out.data_ptr<int64_t>();
  const int64_t n = (int64_t)text.size(), stride = std::max<int64_t>(1, (n - len) / std::max<int64_t>(rows, 1));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < len; ++t) p[r * len + t] = (uint8_t)text[(r * stride + t) % n];
  return out.to(device);
}
}  // namespace

json run_lm_bench(const LmBenchOptions& o) {
  check(o.decode_batch >= 1, "--decode-batch must be >= 1, got " + std::to_string(o.decode_batch));
  check(o.train_steps >= 0, "--steps must be >= 0, got " + std::to_string(o.train_steps));
  check(o.decode_bytes >= 0, "--decode-bytes must be >= 0, got " + std::to_string(o.decode_bytes));
  std::string text;
  if (!o.data.empty()) {
    try {
      text = io::read_file(o.data);
    } catch (const std::exception& e) {
      fail("--data: " + std::string(e.what()));
    }
    check(!text.empty(), "--data: " + o.data + " is empty");
  }
  const auto device = resolve_device(o.device);
  DeviceScope on_device(device);
  set_threads(o.threads);
  torch::manual_seed(0);
  json out;
  out["device"] = device_name(device);
  out["threads"] = num_threads();
  out["config"] = o.config.to_json();
  out["batch"] = o.batch;
  out["seq_len"] = o.seq_len;
  out["decode_batch"] = o.decode_batch;
  out["data"] = o.data.empty() ? "random bytes" : o.data;
  const double peak32 = measure_matmul_gflops(false, 1024, 5, device),
               peak16 = measure_matmul_gflops(true, 1024, 5, device);
  out["matmul_gflops_fp32"] = peak32;
  out["matmul_gflops_bf16"] = peak16;
  for (bool bf16 : {false, true}) {
    if ((bf16 && !o.bf16) || (!bf16 && !o.fp32)) continue;
    const std::string tag = bf16 ? "bf16" : "fp32";
    ByteLM model(o.config);
    model.to(device);
    out["params"] = model.num_parameters();
    const double fpb = model.flops_per_byte(o.seq_len);
    out["flops_per_byte_fwd"] = fpb;
    // Inputs and next-byte targets of one window of seq_len + 1 bytes per row.
    constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
    if (o.train_steps > 0) {
      auto win = bench_bytes(text, o.batch, o.seq_len + 1, device);
      auto ids = win.narrow(1, 0, o.seq_len), tg = win.narrow(1, 1, o.seq_len);
      reset_peak_memory(device);
      const double step_s = time_train_steps(model, ids, tg, bf16, o.train_steps, o.warmup_steps);
      const double bps = o.batch * o.seq_len / step_s;
      out["train_bytes_per_s_" + tag] = bps;
      out["train_ms_per_step_" + tag] = 1e3 * step_s;
      out["train_mfu_" + tag] = 3.0 * fpb * bps / ((bf16 ? peak16 : peak32) * 1e9);
      if (peak_memory_bytes(device) >= 0) out["train_peak_gib_" + tag] = peak_memory_bytes(device) / kGiB;
    }
    if (o.decode_bytes > 0) {
      reset_peak_memory(device);
      auto dec = bench_bytes(text, o.decode_batch, o.decode_bytes + 1, device);
      out["decode_bytes_per_s_" + tag] = time_decode(model, dec, bf16);
      if (peak_memory_bytes(device) >= 0) out["decode_peak_gib_" + tag] = peak_memory_bytes(device) / kGiB;
    }
  }
  return out;
}

}  // namespace dynarch

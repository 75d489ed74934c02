#include "train/options.h"

#include "core/error.h"
#include "core/json_get.h"
#include "model/config/stage_defaults.h"

namespace dynarch {
using nlohmann::json;

json TrainOptions::to_json() const {
  return json{{"data", data}, {"out", out}, {"steps", steps}, {"batch", batch}, {"seq_len", seq_len},
              {"accum", accum}, {"lr", lr}, {"min_lr_ratio", min_lr_ratio}, {"warmup", warmup},
              {"decay", decay}, {"weight_decay", weight_decay}, {"beta1", beta1}, {"beta2", beta2},
              {"clip", clip}, {"dtype", dtype}, {"seed", seed}, {"eval_every", eval_every},
              {"eval_windows", eval_windows}, {"save_every", save_every}, {"ratio_targets", ratio_targets},
              {"lr_multipliers", lr_multipliers}, {"ratio_alpha", ratio_alpha},
              {"gains_every", gains_every}, {"world", world}, {"zero", zero},
              {"init_from", init_from}, {"device", device}, {"packed", packed}};
}

TrainOptions TrainOptions::from_json(const json& j, const std::string& src) {
  TrainOptions o;
  auto base = o.to_json();
  for (auto& [k, v] : j.items())
    if (!base.contains(k)) fail(src + ": unknown field \"" + k + "\"");
  auto get = [&](const char* k, auto& dst) {
    if (!j.contains(k)) return;
    try {
      dst = json_get<std::decay_t<decltype(dst)>>(j.at(k));
    } catch (const json::exception& e) {
      fail(src + ": wrong type or value for \"" + k + "\" in training options: " + e.what());
    }
  };
  get("data", o.data); get("out", o.out); get("steps", o.steps); get("batch", o.batch);
  get("seq_len", o.seq_len); get("accum", o.accum); get("lr", o.lr); get("min_lr_ratio", o.min_lr_ratio);
  get("warmup", o.warmup); get("decay", o.decay); get("weight_decay", o.weight_decay);
  get("beta1", o.beta1); get("beta2", o.beta2); get("clip", o.clip); get("dtype", o.dtype);
  get("seed", o.seed); get("eval_every", o.eval_every); get("eval_windows", o.eval_windows);
  get("save_every", o.save_every); get("ratio_targets", o.ratio_targets);
  get("lr_multipliers", o.lr_multipliers); get("ratio_alpha", o.ratio_alpha); get("gains_every", o.gains_every);
  get("world", o.world); get("zero", o.zero); get("init_from", o.init_from);
  get("device", o.device);
  get("packed", o.packed);
  return o;
}

void TrainOptions::validate() const {
  check(steps >= 1, "--steps must be >= 1");
  check(batch >= 1, "--batch must be >= 1");
  check(seq_len >= 2, "--seq-len must be >= 2");
  check(accum >= 1, "--accum must be >= 1");
  // A non-finite value would pass the range checks below and fail steps later.
  for (auto [v, name] : {std::pair{lr, "--lr"}, {min_lr_ratio, "--min-lr-ratio"}, {warmup, "--warmup"},
                         {decay, "--decay"}, {weight_decay, "--weight-decay"}, {beta1, "--beta1"},
                         {beta2, "--beta2"}, {clip, "--clip"}, {ratio_alpha, "--ratio-alpha"}})
    check(std::isfinite(v), std::string(name) + " must be a finite number, got " + std::to_string(v));
  check(lr > 0, "--lr must be > 0, got " + std::to_string(lr));
  check(min_lr_ratio >= 0, "--min-lr-ratio must be >= 0");
  check(weight_decay >= 0, "--weight-decay must be >= 0");
  check(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "--beta1 and --beta2 must be in [0, 1)");
  check(clip >= 0, "--clip must be >= 0 (0 = off)");
  check(warmup >= 0 && decay >= 0 && warmup + decay <= 1, "--warmup and --decay are fractions summing to <= 1");
  check(dtype == "fp32" || dtype == "bf16" || dtype == "auto", "--dtype must be fp32, bf16 or auto, got " + dtype);
  check(!out.empty(), "--out (run directory) is required");
  check(!data.empty(), "--data is required");
  check(ratio_alpha >= 0, "--ratio-alpha must be >= 0");
  check(gains_every >= 0, "--log-gains-every must be >= 0");
  check(world >= 1, "world must be >= 1");
  for (double n : ratio_targets)
    check(std::isfinite(n) && n > 1.0, "--ratio-targets: every compression target N must be > 1, got " + std::to_string(n));
  for (double m : lr_multipliers) check(std::isfinite(m) && m > 0, "--lr-multipliers must be finite and > 0");
}

std::vector<double> TrainOptions::targets_for(const ModelConfig& c) const {
  const int S = c.num_stages();
  if (ratio_targets.empty()) return default_ratio_targets(S);
  check((int)ratio_targets.size() == S, "--ratio-targets has " + std::to_string(ratio_targets.size()) +
                                            " values; the model has " + std::to_string(S) + " chunking stage(s)");
  return ratio_targets;
}

std::vector<double> TrainOptions::lr_mults_for(const ModelConfig& c) const {
  const int S = c.num_stages();
  if (lr_multipliers.empty()) return S == 0 ? std::vector<double>{1.0} : stage_lr_multipliers(c, targets_for(c));
  check((int)lr_multipliers.size() == S + 1, "--lr-multipliers needs one value per stage (" +
                                                 std::to_string(S + 1) + ")");
  return lr_multipliers;
}

}  // namespace dynarch

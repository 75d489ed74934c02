// The training loop: AdamW + WSD schedule, gradient accumulation and
// clipping, optional bf16 autocast, periodic validation, metrics JSONL,
// checkpoints that resume bit-exactly.
#pragma once
#include <nlohmann/json.hpp>

#include "model/config/config.h"

namespace dynarch {

struct TrainOptions {
  std::string data, out;
  int64_t steps = 1000, batch = 8, seq_len = 512, accum = 1;
  double lr = 2e-3, min_lr_ratio = 0.1, warmup = 0.05, decay = 0.2;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, clip = 1.0;
  std::string dtype = "fp32";  // fp32 | bf16 (autocast)
  uint64_t seed = 0;
  int64_t eval_every = 200, eval_windows = 64, save_every = 500;
  // H-Net: compression target N per outer stage (empty = 6 for 1 stage, 3 each
  // otherwise), ratio-loss weight, per-stage LR multipliers (empty = hnet.md §9).
  std::vector<double> ratio_targets, lr_multipliers;
  double ratio_alpha = 0.03;
  // HC/mHC: log per-layer and composite stream-mixing gains every N steps (0 = off).
  int64_t gains_every = 10;

  nlohmann::json to_json() const;
  static TrainOptions from_json(const nlohmann::json& j, const std::string& source);
  void validate() const;
  // Resolved per-stage values for a model config (validates their sizes).
  std::vector<double> targets_for(const ModelConfig& c) const;
  std::vector<double> lr_mults_for(const ModelConfig& c) const;
};

struct RunControl {
  int threads = 0;
  bool progress = true;
  int64_t stop_at = -1;  // stop (with a checkpoint) after this step: simulates a crash in tests
};

struct TrainResult {
  std::vector<double> losses;  // training loss per step run in this session
  double val_bpb = -1;         // last validation bpb
  double val_acc = -1;         // classifiers: last validation accuracy
  int64_t last_step = 0;
};

// Fresh run: builds the model from `config` and writes everything under opts.out.
TrainResult train_new(const TrainOptions& opts, const ModelConfig& config, const RunControl& ctl);
// Continues RUN from its checkpoint with the saved options.
TrainResult train_resume(const std::string& run_dir, const RunControl& ctl);

}  // namespace dynarch

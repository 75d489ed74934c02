// Training options (the flags of `dynarch train`, saved in every checkpoint as
// train_options.json), the run controls that are not saved, and a run's result.
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
  // Data parallelism: `batch` is per rank; `world` = the ranks it was set for
  // (saved, so a resume with another world size keeps batch x world); `zero` =
  // shard the optimizer state over the ranks (ZeRO stage 1).
  int64_t world = 1;
  bool zero = true;
  // Fresh run only: start from the weights of this run / checkpoint directory wherever a
  // tensor of the same name and shape exists (an LM body into a classifier, a curriculum
  // stage into the next); the optimizer and the schedule start fresh. Empty = none.
  std::string init_from;
  // --device (core/device.h) as given: "auto" resolves again on every resume, so a
  // run moves between machines; absent in runs from before the field (= auto).
  std::string device = "auto";
  // H-Net: inner stages run on packed sequences (model/layers/packing.h) rather
  // than padded rows; the same numbers up to rounding. Absent in older runs = on.
  bool packed = true;

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
  int64_t kill_at = -1;  // SIGKILL itself after this step (and its checkpoint, if any): tests
  std::string device;    // resume: --device given on the command line (empty = the saved one)
};

struct TrainResult {
  std::vector<double> losses;  // training loss per step run in this session
  nlohmann::json last_val;     // last validation line without "step" (null: none yet)
  double val_bpb = -1;         // LM: last validation bpb
  double val_acc = -1;         // classifiers: last validation accuracy
  int64_t last_step = 0;
  std::string summary;         // "6/6 steps: loss … | val bpb … | … bytes/s | run /abs/run"
};

}  // namespace dynarch

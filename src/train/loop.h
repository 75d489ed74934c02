// The one training loop, for every objective (train/objective.h): AdamW with
// the WSD schedule, gradient accumulation and clipping, the model's auxiliary
// losses (H-Model routing terms) and H-Net ratio losses, the H-Model alpha
// schedule, HC/mHC gain monitoring, periodic validation, metrics JSONL,
// checkpoints that resume bit-exactly, Ctrl-C handling.
#pragma once
#include <memory>

#include "model/lm.h"
#include "train/adamw.h"
#include "train/objective.h"
#include "train/options.h"

namespace dynarch {

struct TrainState {
  TrainOptions o;
  std::shared_ptr<ByteLM> model;
  std::unique_ptr<AdamW> opt;
  int64_t step = 0;          // steps completed
  nlohmann::json last_val;   // last validation line without "step" (null: none)
};

TrainResult run_training(TrainState& s, Objective& objective, const RunControl& ctl);

}  // namespace dynarch

// The one training loop, for every objective (train/objective.h): AdamW with
// the WSD schedule, gradient accumulation and clipping, the model's auxiliary
// losses (H-Model routing terms) and H-Net ratio losses, the H-Model alpha
// schedule, HC/mHC gain monitoring, periodic validation, metrics JSONL,
// checkpoints that resume bit-exactly, Ctrl-C handling; with a DataParallel,
// one rank of a data-parallel run (rank 0 writes metrics and checkpoints).
#pragma once
#include <memory>

#include "model/lm.h"
#include "train/adamw.h"
#include "train/objective.h"
#include "train/options.h"

namespace dynarch {

class DataParallel;

struct TrainState {
  TrainOptions o;
  DataParallel* dp = nullptr;  // data-parallel rank of a multi-process run, or null
  std::shared_ptr<ByteLM> model;
  std::unique_ptr<AdamW> opt;
  int64_t step = 0;          // steps completed
  nlohmann::json last_val;   // last validation line without "step" (null: none)
};

TrainResult run_training(TrainState& s, Objective& objective, const RunControl& ctl);

}  // namespace dynarch

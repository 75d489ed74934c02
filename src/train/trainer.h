// `dynarch train`: a fresh run or a resumed one, set up for the one training
// loop (train/loop.h) with the objective the model's task asks for.
#pragma once
#include "model/config/config.h"
#include "train/options.h"

namespace dynarch {

// Fresh run: builds the model from `config` and writes everything under opts.out.
TrainResult train_new(const TrainOptions& opts, const ModelConfig& config, const RunControl& ctl);
// Continues RUN from its checkpoint with the saved options.
TrainResult train_resume(const std::string& run_dir, const RunControl& ctl);

}  // namespace dynarch

// Training loop for sequence classifiers (config task.type = classify), e.g.
// the reasoning dataset: cross-entropy on the cls_head logits, AdamW + WSD,
// clipping, accumulation, bf16 autocast, H-Net ratio loss, periodic accuracy on
// a fixed subset of test.jsonl, checkpoints that resume bit-exactly.
#pragma once
#include <nlohmann/json.hpp>

#include "model/lm.h"
#include "train/adamw.h"
#include "train/trainer.h"

namespace dynarch {

// Called by train_new / train_resume once model and optimiser exist. o.data is
// a directory with train.jsonl and test.jsonl; o.seq_len bounds the input
// (BOS + bytes); o.eval_windows = validation items. `step` = steps already
// done, `trainer` = the checkpoint's trainer record (empty for a new run).
TrainResult run_classifier(const TrainOptions& o, ByteLM& model, AdamW& opt, int64_t step,
                           const nlohmann::json& trainer, const RunControl& ctl);

}  // namespace dynarch

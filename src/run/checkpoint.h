// Run directories, weights and checkpoints: what train/ writes and infer/,
// inspect/ and a resumed training read.
//   RUN/checkpoint/{config.json, model.safetensors, trainer.safetensors, train_options.json,
//                   manifest.json}
//   RUN/metrics.jsonl
// A checkpoint is written to RUN/checkpoint.tmp and swapped in with renames, so
// a kill at any moment leaves a complete checkpoint (the new or the old one).
// manifest.json (run/manifest.h), written last, holds every file's CRC-32;
// loading verifies the files it reads and checks every tensor's shape and dtype.
#pragma once
#include <nlohmann/json.hpp>

#include "model/lm.h"

namespace dynarch {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// RUN, RUN/checkpoint, or a directory holding model.safetensors + config.json.
std::string resolve_model_dir(const std::string& path);

void save_weights(const std::string& path, ByteLM& model, const std::map<std::string, std::string>& meta = {});
// Strict: every parameter present with the right shape and dtype, no unknown tensors.
void load_weights(const std::string& path, ByteLM& model);

// Copies every tensor of the weights at `path` (a run, its checkpoint directory or a
// model.safetensors) whose name the model has, with the same shape; the model's other
// tensors keep their values and their names go to `kept` (when given). Fails when a
// shared name has another shape or when nothing is copied (the wrong model). Returns
// the number of tensors copied.
int64_t init_weights_from(const std::string& path, ByteLM& model, std::vector<std::string>* kept = nullptr);

// Builds the model from config.json and loads model.safetensors (on the CPU:
// checkpoints are device-independent), then moves it to `device`.
std::shared_ptr<ByteLM> load_model(const std::string& path, c10::Device device = c10::kCPU);

// `optimizer`: the optimizer state as named tensors (AdamW::state_tensors).
void save_checkpoint(const std::string& run_dir, ByteLM& model, const NamedTensors& optimizer, const nlohmann::json& trainer,
                     const nlohmann::json& options);

struct TrainerCheckpoint {
  nlohmann::json trainer;  // step, seed, ...
  nlohmann::json options;
  std::map<std::string, at::Tensor> optim;
};
TrainerCheckpoint load_trainer_checkpoint(const std::string& run_dir);

}  // namespace dynarch

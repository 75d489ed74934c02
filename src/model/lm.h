// Byte language model: embed(256) -> backbone -> lm_head (hnet.md §1).
// Parameter names follow the official H-Net state dict. With config task
// "classify" the head is cls_head instead: masked mean of the backbone output
// over valid positions -> Linear(D0, K) with bias (hmodel.md §5).
#pragma once
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "core/bytes.h"
#include "model/config/config.h"
#include "model/config/stage_defaults.h"
#include "model/hnet/hnet_stage.h"
#include "model/layers/state.h"

namespace dynarch {

struct ParamInfo {
  std::string name;
  at::Tensor param;
  double lr_mult = 1.0;
  bool weight_decay = true;
};

class HModel;

class ByteLM : public torch::nn::Module {
 public:
  explicit ByteLM(const ModelConfig& c);
  // ids (B, L) int64 -> logits (B, L, 256) fp32. With a state: prefill/continue.
  // Each outer stage's routing (p, b, mask) goes to a StageRecorder if one is alive.
  at::Tensor forward(const at::Tensor& ids, ModelState* state = nullptr);
  // ids (B) -> logits (B, 256); uses and advances the caches.
  at::Tensor step(const at::Tensor& ids, ModelState& state);
  // Classifier: ids (B, L) int64 = BOS + bytes, right-padded; lengths (B) int64
  // valid positions per row (undefined = all) -> logits (B, K) fp32.
  at::Tensor classify(const at::Tensor& ids, const at::Tensor& lengths);
  // Where the parameters live (ByteLM::to moves them); forward, step and
  // classify take their byte ids and lengths there.
  c10::Device device() const { return embeddings->weight.device(); }
  ModelState new_state(int64_t batch) const;
  // Init rules of hnet.md §8 (seeded by the caller through torch::manual_seed).
  void init_weights();
  // Every parameter with its LR multiplier and weight-decay flag (no decay on
  // norms and biases). lr_mults: one per stage (empty = all 1).
  std::vector<ParamInfo> param_infos(const std::vector<double>& lr_mults = {});
  int64_t num_parameters();
  // Matmul FLOPs per byte for a forward pass at context length L (2 per MAC);
  // inner stages are weighted by the expected chunks per byte 1/prod(N).
  double flops_per_byte(int64_t L, const std::vector<double>& ratios = {}) const;

  ModelConfig config;
  torch::nn::Embedding embeddings{nullptr};
  std::shared_ptr<HNetStage> backbone;
  torch::nn::Linear lm_head{nullptr};   // task lm
  torch::nn::Linear cls_head{nullptr};  // task classify
};

// The H-Model of a byte LM (its innermost main network), or null.
HModel* find_hmodel(ByteLM& m);
// The training step for the H-Model's alpha schedule (< 0: after training).
void set_hmodel_training_step(ByteLM& m, int64_t step);

}  // namespace dynarch

// Byte language model: embed(256) -> backbone -> lm_head (hnet.md §1).
// Parameter names follow the official H-Net state dict.
#pragma once
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "model/config.h"
#include "model/isotropic.h"
#include "model/state.h"

namespace dynarch {

inline constexpr int64_t kBOS = 254, kEOS = 255;

// One stage of the hierarchy. Stage 0 with an innermost layout is a plain
// isotropic model (key prefix backbone.main_network.*).
class Backbone : public torch::nn::Module {
 public:
  Backbone(const ModelConfig& c, int stage);
  at::Tensor forward(const at::Tensor& x, ModelState* st);
  at::Tensor step(const at::Tensor& x, ModelState& st);
  std::shared_ptr<Isotropic> main_network;
};

struct ParamInfo {
  std::string name;
  at::Tensor param;
  double lr_mult = 1.0;
  bool weight_decay = true;
};

class ByteLM : public torch::nn::Module {
 public:
  explicit ByteLM(const ModelConfig& c);
  // ids (B, L) int64 -> logits (B, L, 256) fp32. With a state: prefill/continue.
  at::Tensor forward(const at::Tensor& ids, ModelState* state = nullptr);
  // ids (B) -> logits (B, 256); uses and advances the caches.
  at::Tensor step(const at::Tensor& ids, ModelState& state);
  ModelState new_state(int64_t batch) const;
  // Init rules of hnet.md §8 (seeded by the caller through torch::manual_seed).
  void init_weights();
  // Every parameter with its LR multiplier and weight-decay flag (no decay on
  // norms and biases).
  std::vector<ParamInfo> param_infos();
  int64_t num_parameters();
  // Matmul FLOPs per byte for a forward pass at context length L (2 per MAC).
  double flops_per_byte(int64_t L) const;

  ModelConfig config;
  torch::nn::Embedding embeddings{nullptr};
  std::shared_ptr<Backbone> backbone;
  torch::nn::Linear lm_head{nullptr};
};

}  // namespace dynarch

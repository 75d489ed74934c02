// GRU sequence mixer (H-Model node type `g`, hmodel.md §6): the branch is
// out_proj(GRU(x)), hidden size d, one layer, from torch::nn.
#pragma once
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>

#include "model/layers/mixer.h"

namespace dynarch {

class GRUMixer : public Mixer {
 public:
  explicit GRUMixer(int64_t d_model);
  at::Tensor forward(const at::Tensor& x, LayerCache* cache, int64_t pos0, const at::Tensor& lengths = {}) override;
  at::Tensor step(const at::Tensor& x, LayerCache& cache, const std::vector<int64_t>& pos) override;
  LayerCache new_cache(int64_t batch, at::ScalarType dtype) const override;

  torch::nn::GRU gru{nullptr};
  torch::nn::Linear out_proj{nullptr};
  int64_t d_model;
};

}  // namespace dynarch

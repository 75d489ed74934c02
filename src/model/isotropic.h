// Pre-norm blocks and the isotropic stack (hnet.md §7): the residual stream is
// fp32; the stack ends with RMSNorm of the stream (key `rmsnorm`).
#pragma once
#include <torch/nn/modules/container/modulelist.h>

#include "model/config.h"
#include "model/mixer.h"
#include "model/mlp.h"
#include "model/norm.h"

namespace dynarch {

// Widths and mixer options of the stage a stack lives in.
struct StackOptions {
  int64_t d_model, d_intermediate;  // d_intermediate already rounded; 0 = no MLP
  SsmConfig ssm;
  int64_t num_heads, rotary_dim, window;
};
StackOptions stack_options(const ModelConfig& c, int stage);

class Block : public torch::nn::Module {
 public:
  Block(const LayerSpec& spec, const StackOptions& o);
  // r: residual stream (B, L, D) in fp32 (fp64 in tests); returns the new stream.
  at::Tensor forward(const at::Tensor& r, LayerCache* cache, int64_t pos0, const at::Tensor& lengths = {});
  at::Tensor step(const at::Tensor& r, LayerCache& cache, const std::vector<int64_t>& pos);

  std::shared_ptr<RMSNorm> norm1, norm2;
  std::shared_ptr<Mixer> mixer;
  std::shared_ptr<SwiGLU> mlp;
};

class Isotropic : public torch::nn::Module {
 public:
  Isotropic(const std::vector<LayerSpec>& layout, const StackOptions& o);
  // x: (B, L, D). With a state, continues from it and updates it; `lengths`
  // (B) int64 optional: valid left-aligned rows per batch row (inner H-Net stages).
  at::Tensor forward(const at::Tensor& x, StackState* state = nullptr, const at::Tensor& lengths = {});
  // x: (B, D), one token per row.
  at::Tensor step(const at::Tensor& x, StackState& state);
  StackState new_state(int64_t batch, at::ScalarType dtype) const;
  // Initialise Linear weights by hnet.md §8 with the accumulated n_res.
  void init_linears(double n_res, double sigma = 0.02);

  torch::nn::ModuleList layers;
  std::vector<std::shared_ptr<Block>> blocks;
  std::shared_ptr<RMSNorm> rmsnorm;
  int height = 0;  // hnet.md §8: 1 per m/t layer, 2 per M/T layer
};

}  // namespace dynarch

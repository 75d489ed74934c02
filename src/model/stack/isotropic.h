// Pre-norm blocks and the isotropic stack (hnet.md §7): the residual stream is
// fp32; the stack ends with RMSNorm of the stream (key `rmsnorm`).
#pragma once
#include <torch/nn/modules/container/modulelist.h>

#include "model/config/config.h"
#include "model/layers/mixer.h"
#include "model/layers/mlp.h"
#include "model/layers/norm.h"
#include "model/residual/residual.h"
#include "model/stack/stack.h"

namespace dynarch {

// Widths and mixer options of the stage a stack lives in.
struct StackOptions {
  int64_t d_model, d_intermediate;  // d_intermediate already rounded; 0 = no MLP
  SsmConfig ssm;
  int64_t num_heads, rotary_dim, window;
  bool final_norm = true;  // false: no `rmsnorm` at the exit (H-Model nodes)
  ResidualConfig residual;  // residual-stream policy (plain, hc, mhc)
};
StackOptions stack_options(const ModelConfig& c, int stage);

class Block : public torch::nn::Module {
 public:
  // `sublayer`: index of this block's first sub-layer in the stack (HC/mHC home stream).
  Block(const LayerSpec& spec, const StackOptions& o, int sublayer = 0);
  // r: residual stream (B, L, D) in fp32 (fp64 in tests), or (B, L, n, D) with
  // n streams (HC/mHC); returns the new stream, with mHC possibly pending (settle()).
  // `packed`: r holds packed sequences (1, T, ...) and there is no cache.
  Streams forward(const Streams& r, LayerCache* cache, int64_t pos0, const at::Tensor& lengths = {},
                  const PackedSeqs* packed = nullptr);
  Streams step(const Streams& r, LayerCache& cache, const std::vector<int64_t>& pos);

  std::shared_ptr<RMSNorm> norm1, norm2;
  std::shared_ptr<Mixer> mixer;  // null for `f` (SwiGLU-only) blocks
  std::shared_ptr<SwiGLU> mlp;
  std::shared_ptr<StreamConnection> hc_mixer, hc_mlp;  // null for a plain residual
};

class Isotropic : public Stack {
 public:
  Isotropic(const std::vector<LayerSpec>& layout, const StackOptions& o);
  // x: (B, L, D). With a state, continues from it and updates it; `lengths`
  // (B) int64 optional: valid left-aligned rows per batch row (inner H-Net stages).
  at::Tensor forward(const at::Tensor& x, StackState* state = nullptr, const at::Tensor& lengths = {}) override;
  // Packed sequences (1, T, D): every mixer runs its packed form.
  at::Tensor forward_packed(const at::Tensor& x, const PackedSeqs& seqs) override;
  // x: (B, D), one token per row.
  at::Tensor step(const at::Tensor& x, StackState& state) override;
  StackState new_state(int64_t batch, at::ScalarType dtype) const override;
  // Initialise Linear weights by hnet.md §8 with the accumulated n_res.
  void init_linears(double n_res, double sigma = 0.02) override;

  torch::nn::ModuleList layers;
  std::vector<std::shared_ptr<Block>> blocks;
  std::shared_ptr<RMSNorm> rmsnorm;  // null when !final_norm
  std::shared_ptr<StreamEnds> hc_ends;  // expand/collapse for n streams (null: plain)
  ResidualConfig residual;

 private:
  at::Tensor run_blocks(const at::Tensor& x, StackState* state, int64_t pos0, const at::Tensor& lengths,
                        const PackedSeqs* packed);
};

}  // namespace dynarch

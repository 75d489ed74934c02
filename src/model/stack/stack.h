// A stack maps (B, L, D) -> (B, L, D) with per-layer caches: the isotropic
// stack of pre-norm blocks, or the H-Model's routed layer pool. The innermost
// H-Net stage holds one as its main network (chosen from the config).
#pragma once
#include <torch/nn/module.h>

#include "model/config/config.h"
#include "model/layers/packing.h"
#include "model/layers/state.h"

namespace dynarch {

class Stack : public torch::nn::Module {
 public:
  // x: (B, L, D). With a state, continues from it and updates it. `lengths`
  // (B) int64, optional: valid left-aligned rows per batch row (padding follows).
  virtual at::Tensor forward(const at::Tensor& x, StackState* state = nullptr, const at::Tensor& lengths = {}) = 0;
  // Packed sequences x (1, T, D) (model/layers/packing.h), no state: each
  // sequence as if it were a row of its own. Default: the padded forward on the
  // unpacked batch (stacks without a packed form, e.g. the H-Model).
  virtual at::Tensor forward_packed(const at::Tensor& x, const PackedSeqs& seqs) {
    return pack(forward(unpack(x, seqs), nullptr, seqs.lengths()), seqs);
  }
  // x: (B, D), one token per row; advances state.pos.
  virtual at::Tensor step(const at::Tensor& x, StackState& state) = 0;
  virtual StackState new_state(int64_t batch, at::ScalarType dtype) const = 0;
  // hnet.md §8 Linear init with the accumulated n_res.
  virtual void init_linears(double n_res, double sigma = 0.02) = 0;
  int height = 0;  // n_res contribution (hnet.md §8): 1 per sub-layer
};

}  // namespace dynarch

// Sequence mixer interface shared by attention and Mamba-2.
#pragma once
#include <torch/nn/module.h>

#include "model/layers/packing.h"
#include "model/layers/state.h"

namespace dynarch {

class Mixer : public torch::nn::Module {
 public:
  // x: (B, L, D). With a cache, continues from it (all rows at position `pos0`)
  // and leaves it updated for the next call; without one, runs from position 0.
  // `lengths` (B) int64, optional: valid (left-aligned) rows per batch row; the
  // cache then holds the state after each row's last valid token.
  virtual at::Tensor forward(const at::Tensor& x, LayerCache* cache, int64_t pos0,
                             const at::Tensor& lengths = {}) = 0;
  // Packed sequences x (1, T, D) (model/layers/packing.h), each from position 0
  // with no cache, as if it were a row of its own. This default runs the
  // padded forward on the unpacked batch (a mixer without a packed form, and
  // the reference the packed forms are tested against).
  virtual at::Tensor forward_packed(const at::Tensor& x, const PackedSeqs& seqs) {
    return pack(forward(unpack(x, seqs), nullptr, 0, seqs.lengths()), seqs);
  }
  // One token per row: x (B, D); pos[b] = index of this token in row b.
  virtual at::Tensor step(const at::Tensor& x, LayerCache& cache, const std::vector<int64_t>& pos) = 0;
  // r + step(rmsnorm(r; norm_w, norm_eps)) as one fused call (a pre-norm block
  // with a plain residual, decode), or an undefined tensor where this mixer
  // has no fused path for these inputs: the caller then runs the ops.
  virtual at::Tensor fused_residual_step(const at::Tensor& r, const at::Tensor& norm_w, double norm_eps,
                                         LayerCache& cache, const std::vector<int64_t>& pos) {
    return {};
  }
  // Empty cache for `batch` rows.
  virtual LayerCache new_cache(int64_t batch, at::ScalarType dtype) const = 0;
};

}  // namespace dynarch

// Causal multi-head attention with partial non-interleaved rotary, optional
// sliding window and a KV cache (hnet.md §12).
#pragma once
#include <torch/nn/modules/linear.h>

#include "model/layers/mixer.h"

namespace dynarch {

// Rotate-half rotary on the first r dims of each head. x: (..., L, H, hd) with
// positions (L) or, for steps, x: (B, H, hd) with positions (B); int64 positions
// on the host or on x's device. cos/sin come from a per-device table of fp64
// angles; `bound` > every position sizes it (-1: read from host positions).
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& positions, int64_t r, double base = 10000.0,
                        int64_t bound = -1);

// Decode form: qkv (B, 3, H, hd) contiguous fp32/fp64; rotates q and k of row b
// at position pos[b] in place (same arithmetic as apply_rotary).
void rotary_step_inplace(at::Tensor& qkv, const std::vector<int64_t>& pos, int64_t r, double base = 10000.0);

// Plain attention over (B, H, Lq, hd) queries and (B, H, Lk, hd) keys; query i
// sits at absolute position q_pos0 + i and sees keys j <= that (and, if
// window >= 0, j >= pos - window). Reference and general path.
at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               int64_t q_pos0, int64_t window);

class Attention : public Mixer {
 public:
  Attention(int64_t d_model, int64_t num_heads, int64_t rotary_dim, int64_t window);
  at::Tensor forward(const at::Tensor& x, LayerCache* cache, int64_t pos0, const at::Tensor& lengths = {}) override;
  // Packed: projections and rotary (positions restart at each sequence) on
  // the whole row, then causal (windowed) attention per sequence.
  at::Tensor forward_packed(const at::Tensor& x, const PackedSeqs& seqs) override;
  // Decode step: GEMV projections and one loop per (row, head) over the cached
  // keys (kernels/cpu/dense/attention_step.h); step_reference (reference mode) is the
  // matmul/softmax form.
  at::Tensor step(const at::Tensor& x, LayerCache& cache, const std::vector<int64_t>& pos) override;
  at::Tensor step_reference(const at::Tensor& x, LayerCache& cache, const std::vector<int64_t>& pos);
  LayerCache new_cache(int64_t batch, at::ScalarType dtype) const override;

  torch::nn::Linear Wqkv{nullptr}, out_proj{nullptr};
  int64_t d_model, num_heads, head_dim, rotary_dim, window;

 private:
  // Writes this step's rotated k and v at each row's position (growing the
  // cache geometrically); returns the largest position.
  int64_t write_kv(const at::Tensor& qkv, LayerCache& cache, const std::vector<int64_t>& pos) const;
};

}  // namespace dynarch

// Inference state (caches) for incremental decoding.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <vector>

namespace dynarch {

// Per-layer cache. Mamba-2 uses conv/ssm, attention uses k/v, GRU uses h.
struct LayerCache {
  at::Tensor conv;  // (B, conv_dim, d_conv): last d_conv pre-convolution xBC rows
  at::Tensor ssm;   // (B, H, P, N) fp32
  at::Tensor k, v;  // (B, H, capacity, hd), keys stored after rotary
  at::Tensor h;     // (B, D) recurrent hidden state (GRU)
};

// State of one isotropic stack: caches plus a position counter per row
// (tokens already processed at this stack; rotary and KV index use it).
struct StackState {
  std::vector<LayerCache> layers;
  std::vector<int64_t> pos;
  bool empty() const { return pos.empty(); }
};

// State of one H-Net stage (hnet.md §13); the innermost stage uses `main` only.
struct ModelState {
  StackState main;               // innermost: the main network
  StackState enc, dec;           // outer stages: encoder and decoder caches
  at::Tensor last;               // (B, D) previous encoder output (routing)
  at::Tensor seen;               // (B) bool: a previous byte exists
  at::Tensor last_zbar;          // (B, D) last dechunked value
  std::shared_ptr<ModelState> inner;
};

// Row subsets of a state (for stepping the inner network on boundary rows only).
ModelState select_rows(const ModelState& s, const at::Tensor& rows);
void scatter_rows(ModelState& dst, const at::Tensor& rows, const ModelState& src);

}  // namespace dynarch

// Inference state (caches) for incremental decoding.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace dynarch {

// Per-layer cache. Mamba-2 uses conv/ssm, attention uses k/v.
struct LayerCache {
  at::Tensor conv;  // (B, conv_dim, d_conv): last d_conv pre-convolution xBC rows
  at::Tensor ssm;   // (B, H, P, N) fp32
  at::Tensor k, v;  // (B, H, capacity, hd), keys stored after rotary
};

// State of one isotropic stack: caches plus a position counter per row
// (tokens already processed at this stack; rotary and KV index use it).
struct StackState {
  std::vector<LayerCache> layers;
  std::vector<int64_t> pos;
  bool empty() const { return pos.empty(); }
};

struct ModelState {
  StackState main;
};

}  // namespace dynarch

// Decode step of attention over the KV cache (one query per row, no
// autograd). Reference: Attention::step_reference (matmul/softmax); tests in
// tests/test_fused_decode.cpp.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace dynarch {

// Attention of one query per row over its cached keys: qkv (B, 3, H, hd)
// (q and k already rotated), K/V caches (B, H, capacity, hd) holding this
// step's key; row b sees keys j <= pos[b] (and j >= pos[b] - window if
// window >= 0). Scores and softmax in fp32 or better. Returns (B, H * hd).
at::Tensor attention_step_core(const at::Tensor& qkv, const at::Tensor& K, const at::Tensor& V,
                               const std::vector<int64_t>& pos, int64_t window);

}  // namespace dynarch

// H-Net's routing module (hnet.md §2): boundary probabilities from the cosine
// similarity of adjacent encoder outputs.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

namespace dynarch {

struct Routing {
  at::Tensor p;  // (B, L) boundary probability (fp32)
  at::Tensor b;  // (B, L) bool boundary
  at::Tensor c;  // (B, L) confidence max(p, 1-p)
};

// p_t = clamp(0.5 (1 - cos(W_q x_{t-1}, W_k x_t)), 0, 1), p_0 = 1, b = p > 0.5.
class RoutingModule : public torch::nn::Module {
 public:
  explicit RoutingModule(int64_t d);
  // x: (B, L, D); mask: (B, L) bool or undefined. `prev` (B, D): the vector
  // before x[:, 0] when continuing a sequence (p_0 is then computed, not forced).
  Routing forward(const at::Tensor& x, const at::Tensor& mask = {}, const at::Tensor& prev = {});
  // One step: x (B, D), prev (B, D), seen (B) bool -> p (B).
  at::Tensor step_p(const at::Tensor& x, const at::Tensor& prev, const at::Tensor& seen);
  torch::nn::Linear q_proj_layer{nullptr}, k_proj_layer{nullptr};
};

}  // namespace dynarch

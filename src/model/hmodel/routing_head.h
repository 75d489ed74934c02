// H-Model RoutingHead and sharpening (hmodel.md §3, §4, §10): each sender
// (IN or a layer node) maps its state to logits over the L+1 targets
// {layers 1..L, OUT}; sharpening turns them into routing weights.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

#include "model/layers/norm.h"

namespace dynarch {

struct SharpenOptions {
  std::string mode = "softmax";  // softmax | power | sigmoid
  double alpha = 1.0;
  int topk = 0;                  // 0 = off
  bool straight_through = false; // top-k forward, gradient of the dense rows
  std::string power_of = "sigmoid";  // power: the weights it sharpens (sigmoid gates | softmax)
};

// z (..., K) logits (-inf = forbidden target) -> c (..., K).
//   softmax: softmax(alpha z);  sigmoid: sigma(alpha z) per target;
//   power: w^alpha / sum w^alpha on the non-negative weights w = sigma(z)
//   (power_of = sigmoid: normalised, sharpened gates) or w = softmax(z) (then
//   identical to softmax(alpha z), the spec's identity), computed as
//   softmax(alpha log w) for finite gradients at w = 0.
//   top-k keeps the k largest logits (softmax/power renormalise over them).
at::Tensor sharpen(const at::Tensor& z, const SharpenOptions& o);
// Inference hardening (§10): keep the top-k entries and/or those >= threshold,
// then rescale the row to its previous mass. The largest entry always survives.
at::Tensor harden(const at::Tensor& c, int topk, double threshold);
// Boolean mask of the k largest entries along the last dim.
at::Tensor topk_mask(const at::Tensor& z, int k);

class RoutingHead : public torch::nn::Module {
 public:
  // d: sender width; targets: L+1; hidden > 0: MLP d -> hidden -> targets (GELU).
  RoutingHead(int64_t d, int64_t targets, int hidden);
  // h (..., d) -> logits (..., targets) = proj(RMSNorm(h)) (+ MLP), in h's dtype.
  at::Tensor forward(const at::Tensor& h);
  // W ~ N(0, sigma^2); bias preset (§3, §9): uniform = 0; chain = +c on the
  // `next` targets; self_next = +c on self and next; `negative_rest`: -c
  // elsewhere (doubly-stochastic). self_target < 0: none (IN).
  void init(const std::string& preset, double c, int self_target, const std::vector<int>& next, bool negative_rest,
            double sigma = 0.02);

  std::shared_ptr<RMSNorm> norm;
  torch::nn::Linear fc{nullptr}, proj{nullptr};
};

}  // namespace dynarch

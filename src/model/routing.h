// H-Net dynamic chunking pieces (hnet.md §2–§6): routing module, downsample
// (ChunkLayer), dechunk = EMA smoothing + upsampling, STE, ratio loss.
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

// Boundary rows of x moved to the front of each row in order: (B, M, D) with
// M = max boundaries per row, plus next_mask (B, M) and the gathered index (B, M).
struct Chunked {
  at::Tensor x, mask, index;
};
Chunked downsample(const at::Tensor& x, const at::Tensor& b);

// EMA over chunks: zbar_j = P_j z_j + (1 - P_j) zbar_{j-1}, zbar_{-1} = h0
// (zeros if undefined). z (B, M, D), P (B, M). Custom autograd op with
// hand-written forward and reverse scans (fp32 / fp64).
at::Tensor ema_scan(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0 = {});
// Plain tensor-op reference (a loop of tensor ops) for tests.
at::Tensor ema_scan_reference(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0 = {});

// Dechunk: EMA with P = clamp(p at chunk rows, 1e-4, 1-1e-4), then position t
// takes chunk k(t) = cumsum(b)_t - 1 (k = -1 takes h0, for continued sequences).
at::Tensor dechunk(const at::Tensor& zhat, const at::Tensor& p_chunks, const at::Tensor& b,
                   const at::Tensor& h0 = {});

// Straight-through estimator: forward exactly 1, gradient passed unchanged.
at::Tensor ste_ones(const at::Tensor& c);

// Ratio loss of one stage (hnet.md §6) over valid positions.
struct RatioStats {
  at::Tensor loss;  // scalar, differentiable through G
  double F, G;      // fraction selected, mean p
};
RatioStats ratio_loss(const at::Tensor& p, const at::Tensor& b, const at::Tensor& mask, double N);

}  // namespace dynarch

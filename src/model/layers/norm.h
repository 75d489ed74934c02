// RMSNorm (weight only, fp32 statistics), as in hnet.md §7.
#pragma once
#include <torch/nn/module.h>

namespace dynarch {

// y = x * (mean(x^2) + eps)^-1/2 * w, computed in fp32; returns fp32.
// Plain tensor-op reference; the modules use the fused kernel (kernels/cpu/dense/norm_act.h).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps = 1e-5);
// Mamba-2 gated norm (norm_before_gate = false): rms_norm(y * silu(z)).
// Tensor-op reference; Mamba2 uses gated_rms_norm_fused (kernels/cpu/dense/norm_act.h).
at::Tensor gated_rms_norm(const at::Tensor& y, const at::Tensor& z, const at::Tensor& w,
                          double eps = 1e-5);

class RMSNorm : public torch::nn::Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-5);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight;
  double eps() const { return eps_; }

 private:
  double eps_;
};

}  // namespace dynarch

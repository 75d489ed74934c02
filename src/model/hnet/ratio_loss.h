// H-Net's ratio loss (hnet.md §6): keeps the fraction of boundaries near 1/N.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// Ratio loss of one stage (hnet.md §6) over valid positions.
struct RatioStats {
  at::Tensor loss;  // scalar, differentiable through G
  double F, G;      // fraction selected, mean p
};
RatioStats ratio_loss(const at::Tensor& p, const at::Tensor& b, const at::Tensor& mask, double N);

}  // namespace dynarch

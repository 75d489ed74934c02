// H-Net's ratio loss (hnet.md §6): keeps the fraction of boundaries near 1/N.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

namespace dynarch {

// Ratio loss of one stage (hnet.md §6) over valid positions.
struct RatioStats {
  at::Tensor loss;  // scalar, differentiable through G
  at::Tensor F, G;  // scalars, no gradient: fraction selected, mean p (not read here: no host sync)
};
RatioStats ratio_loss(const at::Tensor& p, const at::Tensor& b, const at::Tensor& mask, double N);

// The same over the union of `world` data-parallel ranks' batches: F and G are
// the global fractions (`sum` adds a vector over the ranks), and the loss,
// linear in G for a fixed F, is scaled so that the ranks' gradients averaged
// equal the gradient of the global loss, and their values averaged equal it.
using SumOverRanks = std::function<std::vector<double>(const std::vector<double>&)>;
RatioStats ratio_loss(const at::Tensor& p, const at::Tensor& b, const at::Tensor& mask, double N,
                      const SumOverRanks& sum, int world);

}  // namespace dynarch

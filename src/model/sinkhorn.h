// Sinkhorn-Knopp projection onto doubly-stochastic matrices (mhc.md §4).
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

struct SinkhornOptions {
  int iters = 20;
  double eps = 1e-6;
  bool eps_after_first = false;
};
// Z: (T, n, n), rows = destinations. M0 = exp(Z - colmax); iters x (columns, then rows).
at::Tensor sinkhorn(const at::Tensor& Z, const SinkhornOptions& o = {});
at::Tensor sinkhorn_reference(const at::Tensor& Z, const SinkhornOptions& o = {});

}  // namespace dynarch

// Sinkhorn-Knopp projection of mHC's residual mixing logits onto (nearly)
// doubly stochastic matrices (mhc.md §4). Batched over tokens: Z is (T, n, n)
// with rows = destinations and columns = sources.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

struct SinkhornOptions {
  int iters = 20;               // t_max: column+row normalisation pairs
  double eps = 1e-6;            // added to every divisor (>= 0)
  bool eps_after_first = false; // DeepSeek-V4: first column step is a plain softmax, then + eps
};

// M0 = exp(Z - colmax(Z)); iters times: divide each column by (its sum + eps),
// then each row by (its sum + eps). Rows of the result sum to 1 (up to eps),
// columns approximately. float32 / float64, computed in the input dtype (never
// under autocast). Custom autograd op: one fused pass per block of tokens;
// saves only Z and recomputes the 2*iters iterates in backward.
at::Tensor sinkhorn(const at::Tensor& Z, const SinkhornOptions& o = {});

// The same with plain tensor ops (autograd unrolls it); for tests and benchmarks.
at::Tensor sinkhorn_reference(const at::Tensor& Z, const SinkhornOptions& o = {});

}  // namespace dynarch

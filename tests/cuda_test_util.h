// Shared by the CUDA kernel tests (on a GPU) and their host-emulated forms:
// the skip when no GPU is visible, and the max relative difference of two
// tensors on any devices (relative to b's largest magnitude).
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#define REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible"

namespace dynarch::testutil {

inline double rel(const at::Tensor& a, const at::Tensor& b) {
  auto A = a.detach().cpu().to(at::kDouble), B = b.detach().cpu().to(at::kDouble);
  return (A - B).abs().max().item<double>() / std::max(1e-30, B.abs().max().item<double>());
}

}  // namespace dynarch::testutil

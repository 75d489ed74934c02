// Shared by the CUDA kernel tests (on a GPU) and their host-emulated forms:
// the skip when no GPU is visible, the max relative difference of two
// tensors on any devices (relative to b's largest magnitude), and the
// sequence starts of packed rows (kernels/cpu/mamba/seq_starts.h).
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#define REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible"

namespace dynarch::testutil {

inline double rel(const at::Tensor& a, const at::Tensor& b) {
  auto A = a.detach().cpu().to(at::kDouble), B = b.detach().cpu().to(at::kDouble);
  return (A - B).abs().max().item<double>() / std::max(1e-30, B.abs().max().item<double>());
}

// (B, L) int64 seq_start of rows given as their sequences' lengths (each row summing to L).
inline at::Tensor starts_of(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<at::Tensor> out;
  for (const auto& lens : rows) {
    std::vector<int64_t> st;
    int64_t t0 = 0;
    for (int64_t n : lens) {
      for (int64_t i = 0; i < n; ++i) st.push_back(t0);
      t0 += n;
    }
    out.push_back(torch::tensor(st, at::kLong));
  }
  return at::stack(out);
}

}  // namespace dynarch::testutil

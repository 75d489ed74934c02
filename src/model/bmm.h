// Batched matmul for many small matrices (the SSD chunk blocks): LibTorch
// 1.13's CPU bmm loops over the batch through the dispatcher (select + addmm
// per matrix), which dominated the chunked scan. This op calls BLAS gemm per
// matrix in a parallel loop. fp32/fp64; other dtypes fall back to at::matmul.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// A (..., M, K) @ B (..., K, N) with broadcastable batch dims; differentiable.
at::Tensor bmm_small(const at::Tensor& A, const at::Tensor& B);

}  // namespace dynarch

// Batched matmul for many small matrices (the SSD chunk blocks): LibTorch
// 1.13's CPU bmm loops over the batch through the dispatcher (select + addmm
// per matrix), which dominated the chunked scan. This op calls BLAS gemm per
// matrix in a parallel loop. fp32/fp64; other dtypes fall back to at::matmul.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// A (..., M, K) @ B (..., K, N) with broadcastable batch dims; differentiable.
at::Tensor bmm_small(const at::Tensor& A, const at::Tensor& B);

// Row-major C (M, N) = op(A) op(B) + beta C through BLAS, op = transpose if flagged;
// A, B, C stored row-major with row lengths lda, ldb, ldc. float / double. Inside a
// parallel region OpenBLAS (OpenMP build) runs it single-threaded, so kernels can
// call it per token block.
template <class T>
void gemm_rowmajor(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb, T beta, T* C,
                   int ldc);

}  // namespace dynarch

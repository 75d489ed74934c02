// Raw CUDA launchers of mHC's Sinkhorn-Knopp projection (mhc.md §4); no torch
// here. Z, out, G, gZ (T, n, n) contiguous, rows = destinations; n <= kMaxSinkhornN.
// Same iteration as kernels/cpu/streams/sinkhorn.cpp: M0 = exp(Z - colmax),
// then `iters` times a column and a row normalisation with + eps divisors;
// v4: the first column step has no eps and eps is added to its output.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dynarch::cuda {

constexpr int kMaxSinkhornN = 8;

struct SinkhornArgs {
  int64_t T;
  int n, iters;
  double eps;
  bool v4;
};

template <class C>
cudaError_t sinkhorn_forward(const C* Z, C* out, SinkhornArgs a, cudaStream_t stream);

// Backward by recompute: every iterate S_k and its divisors are rebuilt from Z
// into `scratch` (sinkhorn_scratch_elems(a) elements of C), then swept back.
template <class C>
cudaError_t sinkhorn_backward(const C* Z, const C* G, C* gZ, C* scratch, SinkhornArgs a, cudaStream_t stream);

inline int64_t sinkhorn_scratch_elems(const SinkhornArgs& a) { return a.T * 2 * a.iters * (int64_t)(a.n * a.n + a.n); }

}  // namespace dynarch::cuda

// Launch geometry shared by the raw CUDA kernels (nvcc only, no torch).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dynarch::cuda {

constexpr int kThreads = 256;

// Blocks for n one-thread-per-item work, capped: kernels loop with a grid
// stride, so any n fits (and n = 0 launches nothing).
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return (unsigned)(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

// Grid-stride loop over [0, n).
#define DYNARCH_GRID_LOOP(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

template <class C>
__device__ __forceinline__ C sigmoid(C x) {
  return C(1) / (C(1) + exp(-x));
}

}  // namespace dynarch::cuda

// Launch geometry shared by the raw CUDA kernels (nvcc only, no torch).
// Built with DYNARCH_CUDA_EMULATE (tests/test_cuda_emulated.cpp, g++), the
// same kernels and launchers run on the host: every block and thread of a
// launch is executed in turn, one at a time. That checks the indexing and the
// arithmetic of each kernel on the CPU; it cannot check races or warp shuffles
// (warp reductions have a serial stand-in there).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#ifdef DYNARCH_CUDA_EMULATE
#include <cmath>
#endif

namespace dynarch::cuda {

constexpr int kThreads = 256;

// Blocks for n one-thread-per-item work, capped: kernels loop with a grid
// stride, so any n fits (and n = 0 launches nothing).
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return (unsigned)(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

#ifdef DYNARCH_CUDA_EMULATE
struct EmuIndex {
  unsigned x = 0;
};
inline thread_local EmuIndex emu_block_idx, emu_thread_idx, emu_block_dim, emu_grid_dim;
#define blockIdx ::dynarch::cuda::emu_block_idx
#define threadIdx ::dynarch::cuda::emu_thread_idx
#define blockDim ::dynarch::cuda::emu_block_dim
#define gridDim ::dynarch::cuda::emu_grid_dim
using std::exp;
using std::sqrt;

// kernel<<<blocks, threads>>>(args...) as a host loop over blocks and threads.
template <class... KArgs, class... Args>
cudaError_t launch_geometry(void (*kernel)(KArgs...), unsigned blocks, unsigned threads, cudaStream_t, Args... args) {
  gridDim.x = blocks, blockDim.x = threads;
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < threads; ++t) {
      blockIdx.x = b, threadIdx.x = t;
      kernel(static_cast<KArgs>(args)...);
    }
  return cudaSuccess;
}
#else
template <class... KArgs, class... Args>
cudaError_t launch_geometry(void (*kernel)(KArgs...), unsigned blocks, unsigned threads, cudaStream_t stream,
                            Args... args) {
  kernel<<<blocks, threads, 0, stream>>>(static_cast<KArgs>(args)...);
  return cudaGetLastError();
}
#endif

// One thread per item (kernels use DYNARCH_GRID_LOOP); returns the launch error.
template <class... KArgs, class... Args>
cudaError_t launch(void (*kernel)(KArgs...), int64_t items, cudaStream_t stream, Args... args) {
  return launch_geometry(kernel, blocks_for(items), kThreads, stream, args...);
}

// One warp per item (kernels use DYNARCH_WARP_LOOP).
template <class... KArgs, class... Args>
cudaError_t launch_warps(void (*kernel)(KArgs...), int64_t items, cudaStream_t stream, Args... args) {
  return launch_geometry(kernel, blocks_for(items * 32), kThreads, stream, args...);
}

// Returns a launch's error from the enclosing launcher.
#define DYNARCH_CUDA_TRY(x)           \
  do {                                \
    const cudaError_t e_ = (x);       \
    if (e_ != cudaSuccess) return e_; \
  } while (0)

// Grid-stride loop over [0, n).
#define DYNARCH_GRID_LOOP(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// Grid-stride loop over warps: w is uniform within a warp (shuffles stay legal).
#define DYNARCH_WARP_LOOP(w, n)                                                    \
  for (int64_t w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; w < (n); \
       w += (int64_t)gridDim.x * blockDim.x / 32)

// An input element as the compute type C (fp32 / fp64 kernels reading fp32,
// fp64 or bf16 inputs).
template <class C>
__device__ __forceinline__ C load_as(float v) {
  return C(v);
}
template <class C>
__device__ __forceinline__ C load_as(double v) {
  return C(v);
}
template <class C>
__device__ __forceinline__ C load_as(__nv_bfloat16 v) {
  return C(__bfloat162float(v));
}

// Sum of f(i) over i in [0, n) by the calling warp (inside DYNARCH_WARP_LOOP);
// every lane returns the sum. Lanes stride over i, then a shuffle reduction;
// the host emulation runs lanes one at a time, so each lane sums all of [0, n).
template <class C, class F>
__device__ __forceinline__ C warp_sum(int64_t n, F f) {
  C s = 0;
#ifdef DYNARCH_CUDA_EMULATE
  for (int64_t i = 0; i < n; ++i) s += f(i);
#else
  for (int64_t i = threadIdx.x % 32; i < n; i += 32) s += f(i);
  for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
#endif
  return s;
}

// A warp's element-wise work over [0, n): lane l takes i = l, l + 32, ... (the
// emulation too: each emulated thread has its own lane).
#define DYNARCH_LANE_LOOP(i, n) for (int64_t i = threadIdx.x % 32; i < (n); i += 32)

template <class C>
__device__ __forceinline__ C sigmoid(C x) {
  return C(1) / (C(1) + exp(-x));
}

}  // namespace dynarch::cuda

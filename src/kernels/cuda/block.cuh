// Block-level kernels (shared memory, __syncthreads, warp-collective tile
// products) that also run under the host emulation (DYNARCH_CUDA_EMULATE).
//
// Such a kernel is written as a sequence of phases:
//   block_phase<T>([&](int t) { ... });  code for thread t of the block's T
//   warp_phase<T>([&](int w) { ... });   code for warp w, all its lanes together
// On the GPU each thread runs its own t (or its warp's w) and the phase ends
// with __syncthreads(), so what one phase writes to shared memory the next one
// reads. In emulation the kernel is called once per block (launch_blocks) and a
// phase is a plain loop over t (or w), one after another, so the same source
// checks the indexing, the staging and the arithmetic on the host.
//
// The rules that make both runs agree:
//   - threads share data only through DYNARCH_SHARED arrays, between phases;
//   - a value a thread or warp keeps across phases lives in PerThread<> /
//     PerWarp<> (one copy per thread / warp in emulation, registers on the
//     GPU), not in a plain local;
//   - code inside a warp phase strides over lanes with warp_lane() and
//     kWarpLanes: 32 lanes on the GPU, one lane doing all the work in emulation;
//   - every branch around a phase is uniform over the block (it depends on
//     blockIdx and kernel arguments only).
// Races, bank conflicts and the tensor-core paths are the GPU tests' job.
#pragma once
#include "kernels/cuda/grid.cuh"

namespace dynarch::cuda {

// A shared-memory array: `DYNARCH_SHARED float tile[64];`. In emulation a
// function-local static (blocks run one at a time, on one host thread).
#ifdef DYNARCH_CUDA_EMULATE
#ifndef __launch_bounds__
#define __launch_bounds__(...)  // the CUDA headers define it for nvcc only
#endif
#define DYNARCH_SHARED static
constexpr int kWarpLanes = 1;
__device__ __forceinline__ int warp_lane() { return 0; }
#else
#define DYNARCH_SHARED __shared__
constexpr int kWarpLanes = 32;
__device__ __forceinline__ int warp_lane() { return threadIdx.x % 32; }
#endif

// Code for each thread t in [0, kThreads), then a barrier.
template <int kThreads, class F>
__device__ __forceinline__ void block_phase(F&& f) {
#ifdef DYNARCH_CUDA_EMULATE
  for (int t = 0; t < kThreads; ++t) f(t);
#else
  f((int)threadIdx.x);
  __syncthreads();
#endif
}

// Code for each warp w in [0, kThreads / 32), its lanes together, then a barrier.
template <int kThreads, class F>
__device__ __forceinline__ void warp_phase(F&& f) {
#ifdef DYNARCH_CUDA_EMULATE
  for (int w = 0; w < kThreads / 32; ++w) f(w);
#else
  f((int)threadIdx.x / 32);
  __syncthreads();
#endif
}

// A warp's registers that live across phases (accumulators). On the GPU each
// warp holds its own one; in emulation all warps' copies exist side by side.
template <class T, int kWarps>
struct PerWarp {
#ifdef DYNARCH_CUDA_EMULATE
  T v[kWarps];
  T& operator[](int w) { return v[w]; }
#else
  T v;
  __device__ __forceinline__ T& operator[](int) { return v; }
#endif
};

// A thread's registers that live across phases (the same, one per thread).
template <class T, int kThreads>
struct PerThread {
#ifdef DYNARCH_CUDA_EMULATE
  T v[kThreads];
  T& operator[](int t) { return v[t]; }
#else
  T v;
  __device__ __forceinline__ T& operator[](int) { return v; }
#endif
};

// kernel<<<blocks, kThreads>>>(args...) for block-level kernels; in emulation
// one call per block. Blocks are one-dimensional: kernels decompose blockIdx.x.
template <int kThreads, class... KArgs, class... Args>
cudaError_t launch_blocks(void (*kernel)(KArgs...), int64_t blocks, cudaStream_t stream, Args... args) {
  if (blocks <= 0) return cudaSuccess;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
#ifdef DYNARCH_CUDA_EMULATE
  (void)stream;
  gridDim.x = (unsigned)blocks, blockDim.x = kThreads, threadIdx.x = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    blockIdx.x = (unsigned)b;
    kernel(static_cast<KArgs>(args)...);
  }
  return cudaSuccess;
#else
  kernel<<<(unsigned)blocks, kThreads, 0, stream>>>(static_cast<KArgs>(args)...);
  return cudaGetLastError();
#endif
}

}  // namespace dynarch::cuda

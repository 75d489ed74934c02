// Device side of the multi-tensor launches (multi_tensor.h): from a chunk
// index to its tensor and element range, the loops, the launch geometry.
#pragma once
#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/optim/multi_tensor.h"

namespace dynarch::cuda {

// Chunk c of a launch: elements [begin, end) of table entry k.
struct ChunkSpan {
  int64_t k, begin, end;
};

// The last entry whose chunk_begin <= c, by binary search (a table holds about
// a hundred tensors: 7 probes, cached, against thousands of elements a chunk).
__device__ __forceinline__ ChunkSpan chunk_span(const TensorMeta* t, int64_t n, int64_t c) {
  int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (t[mid].chunk_begin <= c) lo = mid;
    else hi = mid - 1;
  }
  const int64_t begin = (c - t[lo].chunk_begin) * kChunk;
  const int64_t end = begin + kChunk < t[lo].numel ? begin + kChunk : t[lo].numel;
  return {lo, begin, end};
}

// Blocks stride over the chunks; a block's threads over the chunk's elements.
#define DYNARCH_CHUNK_LOOP(c, chunks) for (int64_t c = blockIdx.x; c < (chunks); c += gridDim.x)
#define DYNARCH_CHUNK_ELEMS(i, span) for (int64_t i = (span).begin + threadIdx.x; i < (span).end; i += blockDim.x)

// x is neither infinite nor NaN (inf - inf and NaN - NaN are NaN), with no
// dependence on which isfinite the host emulation or nvcc provides.
__device__ __forceinline__ bool is_finite(double x) { return x - x == 0.0; }

// A block per chunk (capped, the loop strides); nothing to do: no launch.
template <class... KArgs, class... Args>
cudaError_t launch_chunks(void (*kernel)(KArgs...), int64_t chunks, cudaStream_t stream, Args... args) {
  if (chunks <= 0) return cudaSuccess;
  const unsigned blocks = (unsigned)(chunks > 65535 * 8 ? 65535 * 8 : chunks);
  return launch_geometry(kernel, blocks, kThreads, stream, args...);
}

}  // namespace dynarch::cuda

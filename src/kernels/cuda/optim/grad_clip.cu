// Global gradient norm and clip coefficient on the device: fp64 sums of squares
// per span of kNormSpan elements (a warp each, the shuffle order fixed), a warp
// per group of kSumGroup partials, one warp summing the groups and computing
// the coefficient, so neither the norm nor the clip decision needs the host.
// Deterministic: no atomics, the spans depend on the tensor sizes only.
#include "kernels/cuda/optim/grad_clip_launch.h"
#include "kernels/cuda/optim/multi_tensor.cuh"

namespace dynarch::cuda {
namespace {

template <class C>
__global__ void sq_partials_kernel(const TensorMeta* __restrict__ table, int64_t n, int64_t chunks,
                                   double* __restrict__ partials) {
  constexpr int64_t per_chunk = kChunk / kNormSpan;
  DYNARCH_WARP_LOOP(w, chunks * per_chunk) {
    const ChunkSpan span = chunk_span(table, n, w / per_chunk);
    const int64_t begin = span.begin + w % per_chunk * kNormSpan;
    const int64_t len = span.end - begin < kNormSpan ? span.end - begin : kNormSpan;  // <= 0: empty
    const C* __restrict__ g = static_cast<const C*>(table[span.k].g) + begin;
    const double s = warp_sum<double>(len, [&](int64_t i) {
      const double x = g[i];
      return x * x;
    });
    if (threadIdx.x % 32 == 0) partials[w] = s;
  }
}

__global__ void group_kernel(const double* __restrict__ partials, int64_t count, double* __restrict__ groups) {
  DYNARCH_WARP_LOOP(w, (count + kSumGroup - 1) / kSumGroup) {
    const int64_t begin = w * kSumGroup, len = count - begin < kSumGroup ? count - begin : kSumGroup;
    const double s = warp_sum<double>(len, [&](int64_t i) { return partials[begin + i]; });
    if (threadIdx.x % 32 == 0) groups[w] = s;
  }
}

__global__ void finish_kernel(const double* __restrict__ groups, int64_t count, double max_norm,
                              double* __restrict__ out) {
  DYNARCH_WARP_LOOP(w, 1) {
    const double sq = warp_sum<double>(count, [&](int64_t i) { return groups[i]; });
    if (threadIdx.x % 32 == 0) {
      const double norm = sqrt(sq);
      out[0] = norm;
      out[1] = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
    }
  }
}

template <class C>
__global__ void scale_kernel(const TensorMeta* __restrict__ table, int64_t n, int64_t chunks,
                             const double* __restrict__ clip) {
  if (clip[1] == 1.0) return;
  const C s = C(clip[1]);
  DYNARCH_CHUNK_LOOP(c, chunks) {
    const ChunkSpan span = chunk_span(table, n, c);
    C* __restrict__ g = static_cast<C*>(table[span.k].g);
    DYNARCH_CHUNK_ELEMS(i, span) g[i] = g[i] * s;
  }
}

}  // namespace

template <class C>
cudaError_t grad_sq_partials(const TensorMeta* table, int64_t n, int64_t chunks, double* partials,
                             cudaStream_t stream) {
  if (chunks <= 0) return cudaSuccess;
  return launch_warps(sq_partials_kernel<C>, grad_sq_partial_count(chunks), stream, table, n, chunks, partials);
}

cudaError_t grad_clip_finish(const double* partials, int64_t count, double max_norm, double* scratch, double* out,
                             cudaStream_t stream) {
  const int64_t groups = count > 0 ? (count + kSumGroup - 1) / kSumGroup : 0;
  if (groups > 0) DYNARCH_CUDA_TRY(launch_warps(group_kernel, groups, stream, partials, count, scratch));
  return launch_warps(finish_kernel, 1, stream, scratch, groups, max_norm, out);
}

template <class C>
cudaError_t grad_scale_multi(const TensorMeta* table, int64_t n, int64_t chunks, const double* clip,
                             cudaStream_t stream) {
  return launch_chunks(scale_kernel<C>, chunks, stream, table, n, chunks, clip);
}

template cudaError_t grad_sq_partials<float>(const TensorMeta*, int64_t, int64_t, double*, cudaStream_t);
template cudaError_t grad_sq_partials<double>(const TensorMeta*, int64_t, int64_t, double*, cudaStream_t);
template cudaError_t grad_scale_multi<float>(const TensorMeta*, int64_t, int64_t, const double*, cudaStream_t);
template cudaError_t grad_scale_multi<double>(const TensorMeta*, int64_t, int64_t, const double*, cudaStream_t);

}  // namespace dynarch::cuda

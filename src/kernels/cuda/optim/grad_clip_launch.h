// Raw CUDA launchers of gradient clipping without host syncs; no torch here.
// The op and its reference: kernels/cpu/optim/grad_clip.h.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/optim/multi_tensor.h"

namespace dynarch::cuda {

// A warp sums the squares of kNormSpan elements (a quarter chunk: enough warps
// to keep the memory busy), then a warp sums kSumGroup of those partials.
constexpr int64_t kNormSpan = 1024, kSumGroup = 1024;
static_assert(kChunk % kNormSpan == 0, "a chunk holds whole norm spans");

// fp64 partials grad_sq_partials writes for a table of `chunks` chunks.
inline int64_t grad_sq_partial_count(int64_t chunks) { return chunks * (kChunk / kNormSpan); }

// Scratch doubles grad_clip_finish needs for `count` partials.
inline int64_t grad_clip_scratch(int64_t count) { return count > 0 ? (count + kSumGroup - 1) / kSumGroup : 1; }

// partials[s] = sum of g^2 in fp64 over span s of `table` (device memory, n
// entries of type C = float or double, `chunks` chunks; span s = elements
// [s % 4 * kNormSpan, ...) of chunk s / 4, possibly empty), a warp per span in
// a fixed order: the same sums on every run whatever the grid.
template <class C>
cudaError_t grad_sq_partials(const TensorMeta* table, int64_t n, int64_t chunks, double* partials,
                             cudaStream_t stream);

// out = {norm, coefficient} of `count` partials: groups of kSumGroup summed
// into scratch (a warp each), then one warp sums the groups and computes norm =
// sqrt(sum), coefficient = max_norm / (norm + 1e-6) if max_norm > 0 and norm >
// max_norm, else 1 (NaN norm: 1). Every sum in index order, so the result is
// deterministic. count 0: {0, 1}.
cudaError_t grad_clip_finish(const double* partials, int64_t count, double max_norm, double* scratch, double* out,
                             cudaStream_t stream);

// g *= clip[1] for every gradient of `table` (type C), skipped on the device
// when the coefficient is 1 (clipping inactive).
template <class C>
cudaError_t grad_scale_multi(const TensorMeta* table, int64_t n, int64_t chunks, const double* clip,
                             cudaStream_t stream);

}  // namespace dynarch::cuda

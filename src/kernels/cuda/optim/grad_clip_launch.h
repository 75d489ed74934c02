// Raw CUDA launchers of gradient clipping without host syncs; no torch here.
// The op and its reference: kernels/cpu/optim/grad_clip.h.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/optim/multi_tensor.h"

namespace dynarch::cuda {

// partials[c] = sum of g^2 in fp64 over chunk c of `table` (device memory, n
// entries of type C = float or double, `chunks` chunks), a warp per chunk in a
// fixed order: the same sums on every run whatever the grid.
template <class C>
cudaError_t grad_sq_partials(const TensorMeta* table, int64_t n, int64_t chunks, double* partials,
                             cudaStream_t stream);

// out = {norm, coefficient}: norm = sqrt(sum of partials[0..count)), summed by
// one warp in a fixed order; coefficient = max_norm / (norm + 1e-6) if
// max_norm > 0 and norm > max_norm, else 1 (NaN norm: 1). count 0: {0, 1}.
cudaError_t grad_clip_finish(const double* partials, int64_t count, double max_norm, double* out,
                             cudaStream_t stream);

// g *= clip[1] for every gradient of `table` (type C), skipped on the device
// when the coefficient is 1 (clipping inactive).
template <class C>
cudaError_t grad_scale_multi(const TensorMeta* table, int64_t n, int64_t chunks, const double* clip,
                             cudaStream_t stream);

}  // namespace dynarch::cuda

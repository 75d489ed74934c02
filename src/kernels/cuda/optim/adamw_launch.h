// Raw CUDA launcher of the fused multi-tensor AdamW update; no torch here. The
// op and its reference: kernels/cpu/optim/adamw_step.h.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/optim/multi_tensor.h"

namespace dynarch::cuda {

// Scalars of one step, all tensors alike; bc1 = 1 - beta1^t, bc2 = 1 - beta2^t.
struct AdamWArgs {
  double lr, beta1, beta2, eps, weight_decay, bc1, bc2;
};

// One pass over every tensor of `table` (device memory, n entries, `chunks`
// chunks by assign_chunks), all of type C (float or double), in place, with
// plr = lr * lr_mult and g = grad * clip[1]:
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;
//   p *= 1 - plr wd  (decay flag set and wd > 0);
//   p += -plr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
// clip (device, nullable): {norm, coefficient} of grad_clip_coef; a norm that is
// not finite leaves every tensor as it was. Gradients are read, not written.
template <class C>
cudaError_t adamw_multi(const TensorMeta* table, int64_t n, int64_t chunks, AdamWArgs a, const double* clip,
                        cudaStream_t stream);

}  // namespace dynarch::cuda

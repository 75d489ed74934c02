// Torch binding of gradient clipping on the device (DYNARCH_CUDA builds only).
// The ops grad_clip_coef and scale_grads (kernels/cpu/optim/grad_clip.h)
// forward CUDA tensors here.
#pragma once
#include "kernels/cuda/optim/multi_tensor_cuda.h"

namespace dynarch::cuda {

// Same contract as dynarch::grad_clip_coef: fp64 {norm, coefficient} of the
// gradients of `ts` on their device, in 2 + (dtype groups) launches and no
// host sync. `cache` (multi_tensor_cuda.h) may be shared with scale_grads on
// the same list.
at::Tensor grad_clip_coef(const std::vector<ParamTensors>& ts, double max_norm, std::shared_ptr<void>& cache);

// Same contract as dynarch::scale_grads: every gradient times clip[1], read on
// the device (a coefficient of 1 returns at once), one launch per dtype group.
void scale_grads(const std::vector<ParamTensors>& ts, const at::Tensor& clip, std::shared_ptr<void>& cache);

}  // namespace dynarch::cuda

// Torch binding of the fused multi-tensor AdamW (DYNARCH_CUDA builds only). The
// op adamw_step (kernels/cpu/optim/adamw_step.h) forwards CUDA tensors here.
#pragma once
#include "kernels/cuda/optim/adamw_launch.h"
#include "kernels/cuda/optim/multi_tensor_cuda.h"

namespace dynarch::cuda {

// Same contract as dynarch::adamw_step: every parameter in `ts` updated in one
// launch per dtype (fp32, fp64), on the current stream, with no host sync;
// clip undefined or fp64 {norm, coefficient} on the device (read there: a
// non-finite norm updates nothing, the gradients are scaled on the fly, not in
// place). `cache`: the tables kept between calls (multi_tensor_cuda.h).
void adamw_step(const std::vector<ParamTensors>& ts, const AdamWArgs& a, const at::Tensor& clip,
                std::shared_ptr<void>& cache);

}  // namespace dynarch::cuda

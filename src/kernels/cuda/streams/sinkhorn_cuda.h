// Torch binding of the CUDA Sinkhorn-Knopp (DYNARCH_CUDA builds only). The CPU
// op sinkhorn (kernels/cpu/streams/sinkhorn.h) forwards CUDA tensors here.
#pragma once
#include <ATen/ATen.h>

namespace dynarch::cuda {

// Same contract as dynarch::sinkhorn with SinkhornOptions{iters, eps, v4}:
// Z (T, n, n) fp32/fp64, n <= 8; custom autograd op, backward by recompute.
at::Tensor sinkhorn(const at::Tensor& Z, int64_t iters, double eps, bool v4);

}  // namespace dynarch::cuda

// Gradient clipping to a global L2 norm, in two ops so that nothing waits for
// the host: the norm and the clip coefficient as a device tensor, then the
// scale (or the fused AdamW, adamw_step.h, reading the coefficient itself).
// On CUDA multi-tensor kernels; elsewhere the tensor ops clipping has always
// run, which stay the reference.
#pragma once
#include "kernels/cpu/optim/optim_tensor.h"

namespace dynarch {

// fp64 {norm, coefficient} on the gradients' device: norm = sqrt of the sum of
// every grad's squares (in fp64), coefficient = max_norm / (norm + 1e-6) if
// max_norm > 0 and norm > max_norm, else 1 (a NaN norm: 1). No tensors: {0, 1}
// on the CPU. CUDA in fast mode (cuda_optim_applies): per-chunk partials summed
// in a fixed order on the device, no host sync (the caller reads the norm when
// it needs it); elsewhere grad_clip_coef_reference. Only name, param and grad
// of each OptimTensor are used.
at::Tensor grad_clip_coef(const std::vector<OptimTensor>& ts, double max_norm, MultiTensorCache* cache = nullptr);

// The tensor ops: each grad's fp64 sum of squares added in list order, one host
// read, the coefficient on the host (bit for bit what clip_grad_norm computed).
at::Tensor grad_clip_coef_reference(const std::vector<OptimTensor>& ts, double max_norm);

// Every grad *= clip[1] in place. CUDA: one launch per dtype that reads the
// coefficient on the device; elsewhere scale_grads_reference.
void scale_grads(const std::vector<OptimTensor>& ts, const at::Tensor& clip, MultiTensorCache* cache = nullptr);

// One host read of clip; grad.mul_(coefficient) unless it is 1.
void scale_grads_reference(const std::vector<OptimTensor>& ts, const at::Tensor& clip);

}  // namespace dynarch

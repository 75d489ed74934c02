// One AdamW update (decoupled weight decay, bias-corrected; train/adamw.h) of
// many parameters: on CUDA one fused launch per dtype, elsewhere the tensor ops
// the optimizer has always run, which stay the reference.
#pragma once
#include "kernels/cpu/optim/optim_tensor.h"

namespace dynarch {

// The step's scalars, all parameters alike: bc1 = 1 - beta1^t, bc2 = 1 - beta2^t.
struct AdamWScalars {
  double lr, beta1, beta2, eps, weight_decay, bc1, bc2;
};

// Every tensor of `ts` in place, with plr = lr * lr_mult and g = grad * clip[1]:
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;
//   p *= 1 - plr wd (decay set and wd > 0);  p -= plr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
// clip (optional): fp64 {norm, coefficient} on the parameters' device
// (grad_clip_coef); a norm that is not finite updates nothing. CUDA tensors in
// fast mode within cuda_optim_applies: the fused kernel, which reads the clip
// pair on the device (no host sync) and leaves the gradients as they were;
// elsewhere adamw_step_reference. Bad input: an error naming the tensor.
void adamw_step(const std::vector<OptimTensor>& ts, const AdamWScalars& s, const at::Tensor& clip = {},
                MultiTensorCache* cache = nullptr);

// The tensor ops, parameter by parameter, on any device; with clip, one host
// read of it and the gradients scaled in place first (as clip_grad_norm did).
void adamw_step_reference(const std::vector<OptimTensor>& ts, const AdamWScalars& s, const at::Tensor& clip = {});

}  // namespace dynarch

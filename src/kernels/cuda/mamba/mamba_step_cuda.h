// Torch binding of the CUDA Mamba-2 decode step (DYNARCH_CUDA builds only). The
// op mamba_step_core (kernels/cpu/mamba/mamba_step.h) forwards CUDA tensors here.
#pragma once
#include <ATen/ATen.h>

namespace dynarch::cuda {

// Same contract as dynarch::mamba_step_core: zx (B, 2 Di + 2N + H) fp32, bf16 or
// fp64 (bf16 is read as fp32; another type than the cache's is converted);
// conv (B, Cd, K) converted to the ssm cache's type if it differs (as on the
// CPU, the caller's tensor is replaced then); ssm (B, H, P, N) fp32 or fp64,
// contiguous; both updated in place. No autograd. Returns g (B, Di) in ssm's type.
at::Tensor mamba_step_core(const at::Tensor& zx, at::Tensor& conv, at::Tensor& ssm, const at::Tensor& conv_w,
                           const at::Tensor& conv_b, const at::Tensor& dt_bias, const at::Tensor& A_log,
                           const at::Tensor& D, const at::Tensor& norm_w, int64_t d_inner, int64_t d_state, double eps);

}  // namespace dynarch::cuda

// Torch binding of the CUDA causal depthwise conv + SiLU (DYNARCH_CUDA builds
// only). The op causal_conv1d_silu (kernels/cpu/mamba/causal_conv.h) forwards
// CUDA tensors here.
#pragma once
#include <ATen/ATen.h>

namespace dynarch::cuda {

// Same contract as dynarch::causal_conv1d_silu; init may be empty (numel 0) for zeros.
at::Tensor causal_conv1d_silu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& init);

}  // namespace dynarch::cuda

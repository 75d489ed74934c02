// Torch binding of the CUDA causal depthwise conv + SiLU (DYNARCH_CUDA builds
// only). The op causal_conv1d_silu (kernels/cpu/mamba/causal_conv.h) forwards
// CUDA tensors here.
#pragma once
#include <ATen/ATen.h>

namespace dynarch::cuda {

// Same contract as dynarch::causal_conv1d_silu; init may be empty (numel 0) for
// zeros; seq_start (L) or (B, L) int64 on x's device, or undefined (its values
// are not checked here: that would read them back).
at::Tensor causal_conv1d_silu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& init, const at::Tensor& seq_start = {});

}  // namespace dynarch::cuda

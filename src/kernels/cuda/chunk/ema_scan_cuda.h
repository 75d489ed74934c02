// Torch binding of the CUDA dechunk EMA (DYNARCH_CUDA builds only). The CPU
// op ema_scan (kernels/cpu/chunk/ema_scan.h) forwards CUDA tensors here.
#pragma once
#include <ATen/ATen.h>

namespace dynarch::cuda {

// Same contract as dynarch::ema_scan: z (B, M, D) fp32/bf16/fp64, P (B, M),
// h0 (B, D) defined; computed in fp32 (fp64 for fp64 z), gradient of z in
// z's dtype. Custom autograd op.
at::Tensor ema_scan(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0);

}  // namespace dynarch::cuda

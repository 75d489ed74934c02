// Torch binding of the CUDA SSD chunked scan (DYNARCH_CUDA builds only).
// The op ssd_chunk_scan (kernels/cpu/mamba/ssd_chunked.h) forwards CUDA
// tensors here in fast mode. Tested against ssd_sequential (tests/test_cuda_kernels.cpp).
#pragma once
#include <ATen/ATen.h>

#include <utility>

namespace dynarch::cuda {

// x (B, L, H, P), dt (B, L, H) after softplus, a (H), Bm / Cm (B, L, N), init
// (B, H, P, N) or undefined; one dtype (fp32 or fp64), one CUDA device.
// seq_start (L) or (B, L) int64 on that device, or undefined: packed rows,
// the state reset at each sequence start (as dynarch::ssd_chunked; its values
// are not checked here, that would read them back).
// Returns {y (B, L, H, P) without the D skip, final state (B, H, P, N)}.
// Differentiable (a custom autograd Function): the backward kernels
// (ssd_scan_backward.cu) give the gradients of x, dt, a, Bm, Cm and init.
std::pair<at::Tensor, at::Tensor> ssd_chunk_scan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a,
                                                 const at::Tensor& Bm, const at::Tensor& Cm, int64_t chunk,
                                                 const at::Tensor& init = {}, const at::Tensor& seq_start = {});

// The same forward without autograd (no inputs saved).
std::pair<at::Tensor, at::Tensor> ssd_chunk_scan_forward(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a,
                                                         const at::Tensor& Bm, const at::Tensor& Cm, int64_t chunk,
                                                         const at::Tensor& init = {},
                                                         const at::Tensor& seq_start = {});

}  // namespace dynarch::cuda

// Torch bindings of the CUDA HC / mHC stream mixing (DYNARCH_CUDA builds only).
// The CPU ops hc_pre_mix / hc_post_res (kernels/cpu/streams/stream_mix.h)
// forward CUDA tensors here. Same contracts: fp32 / fp64, one dtype per call.
#pragma once
#include <ATen/ATen.h>

namespace dynarch::cuda {

at::Tensor hc_pre_mix(const at::Tensor& X, const at::Tensor& pre);
at::Tensor hc_post_res(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y);

}  // namespace dynarch::cuda

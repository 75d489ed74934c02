// Mamba-2's causal depthwise conv + SiLU (hnet.md §11.2) as an op of its own.
// On the CPU it is the reference (the fused CPU path keeps the conv inside
// mamba_core); CUDA tensors run the CUDA kernel of kernels/cuda/mamba/.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// x (B, L, C) fp32/bf16/fp64 (the xBC columns of zxbcdt: a view with unit
// channel stride is read in place on CUDA); weight (C, 1, K) as torch's Conv1d;
// bias (C); init (B, K-1, C) the pre-conv rows before position 0, undefined for
// zeros (no gradient). Returns silu(conv(x) + bias) (B, L, C) in fp32 (fp64
// for fp64 x); gradients for x (in x's dtype), weight and bias.
// Packed rows: seq_start (L) or (B, L) int64 (kernels/cpu/mamba/seq_starts.h),
// undefined for none: a tap reading a position before its output's sequence
// start reads zero (and passes no gradient); init's rows, before position 0,
// belong to the first sequence.
at::Tensor causal_conv1d_silu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& init = {}, const at::Tensor& seq_start = {});
// torch's conv1d over the left-padded sequence, as Mamba2::forward_reference;
// with seq_start, the K taps as masked shifted copies.
at::Tensor causal_conv1d_silu_reference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                        const at::Tensor& init = {}, const at::Tensor& seq_start = {});

}  // namespace dynarch

// Fused Mamba-2 core for training and prefill: everything between in_proj and
// out_proj as one custom autograd op with hand-written forward and backward:
//   xc = silu(causal depthwise conv(xBC) + bias)          (x | B | C columns)
//   delta = softplus(dt + dt_bias) (0 past a row's length), a = -exp(A_log)
//   S_t = exp(delta_t a) S_{t-1} + delta_t x_t (x) B_t,   y_t = S_t C_t + D x_t
//   g = rms_norm(y * silu(z)) * norm_w
// The scan is the plain sequential recurrence (per head a P x N state kept in
// L1; states checkpointed every kCheckpoint steps and recomputed in backward),
// so there are no permute/pad copies and no slices of the input: the gradient
// of zxbcdt is written in one buffer. Reference: Mamba2's op-by-op forward
// (KernelMode::reference) with ssd_sequential; tested in tests/test_fused_mamba.cpp.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

struct MambaDims {
  int64_t d_inner, d_state, nheads, headdim, d_conv;
  double eps = 1e-5;
};

struct MambaCoreResult {
  at::Tensor g;      // (B, L, d_inner) fp32 (fp64 for fp64 input), input of out_proj
  at::Tensor state;  // (B, H, P, N) SSM state after each row's last valid position (no gradient)
};

// zxbcdt (B, L, 2 d_inner + 2 N + H) in fp32/bf16/fp64; conv_w (conv_dim, 1, K);
// conv_b (conv_dim); dt_bias, A_log, D (H); norm_w (d_inner). Optional (pass
// undefined): lengths (B) int64 valid rows; conv_init (B, K-1, conv_dim) the
// pre-conv rows before position 0; ssm_init (B, H, P, N). The initial states
// get no gradient. Packed sequences (model/layers/packing.h): B = 1 and
// seq_starts (L) int64 on the CPU, the start of each position's sequence; the
// conv sees no rows before it and the scan state resets there (no lengths, no
// initial states then).
MambaCoreResult mamba_core(const at::Tensor& zxbcdt, const at::Tensor& conv_w, const at::Tensor& conv_b,
                           const at::Tensor& dt_bias, const at::Tensor& A_log, const at::Tensor& D,
                           const at::Tensor& norm_w, const MambaDims& dims, const at::Tensor& lengths = {},
                           const at::Tensor& conv_init = {}, const at::Tensor& ssm_init = {},
                           const at::Tensor& seq_starts = {});

}  // namespace dynarch

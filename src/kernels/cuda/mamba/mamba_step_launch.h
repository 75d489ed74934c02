// Raw CUDA launcher of the Mamba-2 decode step after in_proj (hnet.md §11.5);
// no torch here. The CPU kernel and its contract: kernels/cpu/mamba/mamba_step.h.
// zx (B, W) rows with row stride sz, W = 2 Di + 2N + H: [z | xBC | dt];
// conv (B, Cd, K) and ssm (B, H, P, N) contiguous, updated in place;
// conv_w (Cd, K), conv_b (Cd), dt_bias / A_log / D (H), norm_w (Di).
// Compute type C = float (for float and bf16 zx) or double.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dynarch::cuda {

struct StepShape {
  int64_t B, Di, N, H, K;
  int64_t sz;  // row stride of zx in elements (its column stride is 1)
};

// Three launches: conv window shift + conv + SiLU into xc (B, Cd) (a thread per
// (b, channel)); the SSM update and y = S C + D x into y (B, Di) (a warp per
// (b, h, p) state row, lanes over N); the gated RMS norm into g (B, Di) (a warp
// per row). xc and y are scratch the caller owns.
template <class T, class C>
cudaError_t mamba_step_forward(const T* zx, C* conv, C* ssm, const C* conv_w, const C* conv_b, const C* dt_bias,
                               const C* A_log, const C* D, const C* norm_w, C eps, C* xc, C* y, C* g, StepShape s,
                               cudaStream_t stream);

}  // namespace dynarch::cuda

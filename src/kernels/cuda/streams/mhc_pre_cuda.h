// Torch bindings of the CUDA mHC sub-layer input (DYNARCH_CUDA builds only).
// The CPU ops mhc_pre (kernels/cpu/streams/mhc_input.h) and mhc_project
// (kernels/cpu/streams/stream_mix.h) forward CUDA tensors here. Same contracts:
// fp32 / fp64, one dtype per call; here also n <= 8. The GEMMs with phi are
// cuBLAS (at::mm); rho, the coefficients, the pre-mix and their backward are
// the fused kernels of mhc_pre.cu.
#pragma once
#include <ATen/ATen.h>

namespace dynarch::cuda {

// The fields of dynarch::MhcPre (the bindings include no CPU header).
struct MhcPreOut {
  at::Tensor u;     // (T, D)
  at::Tensor pre;   // (T, n)
  at::Tensor post;  // (T, n)
  at::Tensor Z;     // (T, n, n) destination x source
};

// X (T, n, D); phi (n*n + 2n, n*D); bias (n*n + 2n); alpha (3).
MhcPreOut mhc_pre(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha,
                  double rms_eps, double pre_eps);

// m (T, K) = (vec(X) phi^T) rho; X (T, n, D), phi (K, n*D).
at::Tensor mhc_project(const at::Tensor& X, const at::Tensor& phi, double eps);

}  // namespace dynarch::cuda

// Fused mHC sub-layer input (mhc.md §3, §8 items 1–3): everything before the
// branch F in one custom op, so a sub-layer makes one GEMM pass and one fused
// pass over the streams X instead of separate projection, coefficient and
// pre-mix ops (and their autograd glue):
//   m = (vec(X) phi^T) * rho,  rho = (mean(vec(X)^2) + rms_eps)^(-1/2)
//   pre  = sigma(alpha[0] m[0:n] + b[0:n]) + pre_eps
//   post = 2 sigma(alpha[1] m[n:2n] + b[n:2n])
//   Z[k, j] = alpha[2] m[2n + j n + k] + b[2n + j n + k]   (destination k, source j)
//   u = sum_j pre[j] X[j]
// H_res = sinkhorn(Z) stays its own op (it touches only T x n x n values).
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

struct MhcPre {
  at::Tensor u;     // (T, D) branch input
  at::Tensor pre;   // (T, n)
  at::Tensor post;  // (T, n)
  at::Tensor Z;     // (T, n, n) Sinkhorn logits, destination x source
};

// X (T, n, D); phi (n*n + 2n, n*D); bias (n*n + 2n); alpha (3). float32 or float64.
MhcPre mhc_pre(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha,
               double rms_eps, double pre_eps);
// The previous sub-layer's merge fused in front (mhc.md §8, items 1 and 3): forms
// X = R Xp + post^T y (hc_post_res) token block by token block and runs mhc_pre on
// each block while its rows are in cache; backward takes dX of X from the next
// sub-layer and adds it inside the same pass. One read and one write of the n·D
// state per sub-layer forward instead of four passes, and no separate autograd
// sum of X's two gradients.
struct MhcMergePre {
  at::Tensor X;  // (T, n, D) the merged state (input of this sub-layer's own merge)
  MhcPre p;
};
MhcMergePre mhc_merge_pre(const at::Tensor& Xp, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y,
                          const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha, double rms_eps,
                          double pre_eps);
MhcMergePre mhc_merge_pre_reference(const at::Tensor& Xp, const at::Tensor& R, const at::Tensor& post,
                                    const at::Tensor& y, const at::Tensor& phi, const at::Tensor& bias,
                                    const at::Tensor& alpha, double rms_eps, double pre_eps);
// The same from the unfused ops (mhc_project, tensor ops, hc_pre_mix): the reference.
MhcPre mhc_pre_reference(const at::Tensor& X, const at::Tensor& phi, const at::Tensor& bias, const at::Tensor& alpha,
                         double rms_eps, double pre_eps);

}  // namespace dynarch

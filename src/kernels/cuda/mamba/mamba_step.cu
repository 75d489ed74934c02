// Mamba-2 decode step on CUDA, the same arithmetic as the CPU kernel
// (kernels/cpu/mamba/mamba_step.cpp) in the same order: (1) per (b, channel)
// shift the conv window, append this step's xBC, conv + bias + SiLU; (2) per
// (b, h, p) one warp: lanes stride over N, S[n] = dA S[n] + delta x B[n] in
// place, the sum of S[n] C[n] by shuffles, y = that + D x; (3) per row one
// warp: the gated RMS norm g = rmsnorm(y silu(z)) w.
#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/mamba/mamba_step_launch.h"

namespace dynarch::cuda {
namespace {

#ifdef DYNARCH_CUDA_EMULATE
using std::log1p;
#endif

// A warp's lanes over the N states of one row. The host emulation runs the
// lanes one at a time and cannot combine their registers, so there lane 0 does
// the whole row (in the CPU kernel's order) and the other lanes nothing: every
// state is still updated exactly once.
#ifdef DYNARCH_CUDA_EMULATE
__device__ __forceinline__ int64_t step_lane_begin(int64_t n) { return threadIdx.x % 32 == 0 ? 0 : n; }
constexpr int64_t kStepLaneStride = 1;
template <class C>
__device__ __forceinline__ C step_lane_sum(C v) {
  return v;
}
#else
__device__ __forceinline__ int64_t step_lane_begin(int64_t) { return threadIdx.x % 32; }
constexpr int64_t kStepLaneStride = 32;
template <class C>
__device__ __forceinline__ C step_lane_sum(C v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
#endif

template <class T, class C>
__global__ void step_conv_kernel(const T* __restrict__ zx, C* __restrict__ conv, const C* __restrict__ conv_w,
                                 const C* __restrict__ conv_b, C* __restrict__ xc, StepShape s) {
  const int64_t Cd = s.Di + 2 * s.N;
  DYNARCH_GRID_LOOP(i, s.B * Cd) {
    const int64_t c = i % Cd, b = i / Cd;
    C* win = conv + i * s.K;
    const C* w = conv_w + c * s.K;
    C acc = conv_b[c];
    for (int64_t k = 0; k + 1 < s.K; ++k) {
      win[k] = win[k + 1];
      acc += win[k] * w[k];
    }
    win[s.K - 1] = load_as<C>(zx[b * s.sz + s.Di + c]);
    acc += win[s.K - 1] * w[s.K - 1];
    xc[i] = acc * sigmoid(acc);
  }
}

template <class T, class C>
__global__ void step_ssm_kernel(const T* __restrict__ zx, const C* __restrict__ xc, C* __restrict__ ssm,
                                const C* __restrict__ dt_bias, const C* __restrict__ A_log, const C* __restrict__ D,
                                C* __restrict__ y, StepShape s) {
  const int64_t P = s.Di / s.H, Cd = s.Di + 2 * s.N;
  DYNARCH_WARP_LOOP(w, s.B * s.H * P) {  // w = (b * H + h) * P + p: the state row
    const int64_t p = w % P, h = (w / P) % s.H, b = w / (P * s.H);
    const C v = load_as<C>(zx[b * s.sz + s.Di + Cd + h]) + dt_bias[h];
    const C delta = v > C(20) ? v : log1p(exp(v));  // softplus (torch's threshold)
    const C dA = exp(-delta * exp(A_log[h]));
    const C* xb = xc + b * Cd;
    const C *Bv = xb + s.Di, *Cv = Bv + s.N;
    const C x = xb[h * P + p], u = delta * x;
    C* S = ssm + w * s.N;
    C acc = 0;
    for (int64_t n = step_lane_begin(s.N); n < s.N; n += kStepLaneStride) {
      S[n] = dA * S[n] + u * Bv[n];
      acc += S[n] * Cv[n];
    }
    acc = step_lane_sum(acc);
    if (threadIdx.x % 32 == 0) y[b * s.Di + h * P + p] = acc + D[h] * x;
  }
}

template <class T, class C>
__global__ void step_norm_kernel(const T* __restrict__ zx, const C* __restrict__ y, const C* __restrict__ norm_w,
                                 C eps, C* __restrict__ g, StepShape s) {
  DYNARCH_WARP_LOOP(b, s.B) {
    const T* z = zx + b * s.sz;
    const C* yb = y + b * s.Di;
    auto gated = [&](int64_t i) {
      const C zi = load_as<C>(z[i]);
      return yb[i] * zi * sigmoid(zi);
    };
    const C ss = warp_sum<C>(s.Di, [&](int64_t i) {
      const C gi = gated(i);
      return gi * gi;
    });
    const C inv = C(1) / sqrt(ss / C(s.Di) + eps);
    DYNARCH_LANE_LOOP(i, s.Di) g[b * s.Di + i] = gated(i) * inv * norm_w[i];
  }
}

}  // namespace

template <class T, class C>
cudaError_t mamba_step_forward(const T* zx, C* conv, C* ssm, const C* conv_w, const C* conv_b, const C* dt_bias,
                               const C* A_log, const C* D, const C* norm_w, C eps, C* xc, C* y, C* g, StepShape s,
                               cudaStream_t stream) {
  if (s.K < 1 || s.H < 1 || s.Di % s.H != 0) return cudaErrorInvalidValue;
  if (s.B == 0) return cudaSuccess;
  DYNARCH_CUDA_TRY(launch(step_conv_kernel<T, C>, s.B * (s.Di + 2 * s.N), stream, zx, conv, conv_w, conv_b, xc, s));
  DYNARCH_CUDA_TRY(launch_warps(step_ssm_kernel<T, C>, s.B * s.Di, stream, zx, xc, ssm, dt_bias, A_log, D, y, s));
  return launch_warps(step_norm_kernel<T, C>, s.B, stream, zx, y, norm_w, eps, g, s);
}

#define DYNARCH_STEP_INSTANTIATE(T, C)                                                                             \
  template cudaError_t mamba_step_forward<T, C>(const T*, C*, C*, const C*, const C*, const C*, const C*, const C*, \
                                                const C*, C, C*, C*, C*, StepShape, cudaStream_t);
DYNARCH_STEP_INSTANTIATE(float, float)
DYNARCH_STEP_INSTANTIATE(__nv_bfloat16, float)
DYNARCH_STEP_INSTANTIATE(double, double)

}  // namespace dynarch::cuda

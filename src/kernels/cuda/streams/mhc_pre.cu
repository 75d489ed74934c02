// mHC sub-layer input on CUDA (mhc_pre_launch.h): one warp per token. The
// warp sums the token's n*D squares for rho (warp_sum: lanes stride, then a
// shuffle reduction), every lane evaluates the n pre coefficients it needs for
// the pre-mix (n <= 8 sigmoids, cheaper than a round trip through memory),
// the lanes write the K coefficients and then u, D innermost (coalesced).
// Backward: the n dot products <X_j, gu> and the three alpha sums are warp
// sums; draw, dlogit and dX are written lane-strided. Per-token partials of
// dbias / dalpha are summed by the binding (torch), so no atomics and the
// result does not depend on scheduling. n = 4 is compiled with a fixed n (NS),
// so the per-stream arrays stay in registers; other n <= 8 use local arrays.
#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/streams/mhc_pre_launch.h"

namespace dynarch::cuda {
namespace {

// (mean(x[0..N)^2) + eps)^(-1/2) of the calling warp's row; every lane gets it.
template <int NS>
constexpr int kCap = NS > 0 ? NS : kMaxMhcN;

// a[i] for a runtime i < n without indexing the array by it (so a fixed-size
// array can stay in registers).
template <class C, int NS>
__device__ __forceinline__ C pick(const C* a, int64_t i, int64_t n) {
  C v = a[0];
  for (int64_t j = 1; j < n; ++j)
    if (j == i) v = a[j];
  return v;
}

template <class C>
__device__ __forceinline__ C warp_rms_inv(const C* __restrict__ x, int64_t N, C eps) {
  const C ss = warp_sum<C>(N, [&](int64_t e) { return x[e] * x[e]; });
  return C(1) / sqrt(ss / C(N) + eps);
}

template <class C, int NS>
__global__ void mhc_pre_forward_kernel(const C* __restrict__ X, const C* __restrict__ raw, const C* __restrict__ bias,
                                       const C* __restrict__ alpha, C rms_eps, C pre_eps, C* __restrict__ rho,
                                       C* __restrict__ u, C* __restrict__ pre, C* __restrict__ post,
                                       C* __restrict__ Z, MhcShape s) {
  const int64_t n = NS > 0 ? NS : s.n, D = s.D, nD = n * D, K = n * n + 2 * n;
  DYNARCH_WARP_LOOP(t, s.T) {
    const C* x = X + t * nD;
    const C* rw = raw + t * K;
    const C r = warp_rms_inv(x, nD, rms_eps);
    if (threadIdx.x % 32 == 0) rho[t] = r;
    C p[kCap<NS>];
    for (int64_t j = 0; j < n; ++j) p[j] = sigmoid(alpha[0] * rw[j] * r + bias[j]) + pre_eps;
    DYNARCH_LANE_LOOP(i, K) {
      if (i < n) {
        pre[t * n + i] = pick<C, NS>(p, i, n);
      } else if (i < 2 * n) {
        post[t * n + i - n] = C(2) * sigmoid(alpha[1] * rw[i] * r + bias[i]);
      } else {  // logit of source j -> destination k; Z is destination x source
        const int64_t j = (i - 2 * n) / n, k = (i - 2 * n) % n;
        Z[(t * n + k) * n + j] = alpha[2] * rw[i] * r + bias[i];
      }
    }
    DYNARCH_LANE_LOOP(d, D) {
      C acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += p[j] * x[j * D + d];
      u[t * D + d] = acc;
    }
  }
}

// The gradients one token's backward reads; null = zero.
template <class C>
struct PreGrads {
  const C *gu, *gpre, *gpost, *gZ;
};

template <class C, int NS>
__global__ void mhc_pre_backward_kernel(const C* __restrict__ X, const C* __restrict__ raw, const C* __restrict__ rho,
                                        const C* __restrict__ pre, const C* __restrict__ post,
                                        const C* __restrict__ alpha, PreGrads<C> g, C pre_eps, C* __restrict__ dX,
                                        C* __restrict__ draw, C* __restrict__ dlogit, C* __restrict__ dalpha_part,
                                        MhcShape s) {
  const int64_t n = NS > 0 ? NS : s.n, D = s.D, nD = n * D, K = n * n + 2 * n;
  DYNARCH_WARP_LOOP(t, s.T) {
    const C* x = X + t * nD;
    const C* gu = g.gu ? g.gu + t * D : nullptr;
    const C* rw = raw + t * K;
    const C r = rho[t];
    C xg[kCap<NS>];  // <X_j, gu>: the pre-mix's gradient of pre_j
    for (int64_t j = 0; j < n; ++j)
      xg[j] = gu ? warp_sum<C>(D, [&](int64_t d) { return x[j * D + d] * gu[d]; }) : C(0);
    // Gradient of logit i (the argument of sigma, 2 sigma, or Z itself).
    auto dl = [&](int64_t i) -> C {
      if (i < n) {
        const C sg = pre[t * n + i] - pre_eps;
        return ((g.gpre ? g.gpre[t * n + i] : C(0)) + pick<C, NS>(xg, i, n)) * sg * (C(1) - sg);
      }
      if (i < 2 * n) {
        const C sg = post[t * n + i - n] / C(2);
        return g.gpost ? g.gpost[t * n + i - n] * C(2) * sg * (C(1) - sg) : C(0);
      }
      const int64_t j = (i - 2 * n) / n, k = (i - 2 * n) % n;
      return g.gZ ? g.gZ[(t * n + k) * n + j] : C(0);
    };
    // S_q = sum over map q's logits of dlogit * raw: dalpha_q = S_q rho and
    // d rho = <alpha_q dlogit, raw> = sum_q alpha_q S_q.
    C S[3];
    for (int q = 0; q < 3; ++q) {
      const int64_t off = q == 0 ? 0 : q == 1 ? n : 2 * n, len = q < 2 ? n : n * n;
      S[q] = warp_sum<C>(len, [&](int64_t i) { return dl(off + i) * rw[off + i]; });
    }
    if (threadIdx.x % 32 == 0)
      for (int q = 0; q < 3; ++q) dalpha_part[t * 3 + q] = S[q] * r;
    DYNARCH_LANE_LOOP(i, K) {
      const C z = dl(i);
      dlogit[t * K + i] = z;
      draw[t * K + i] = alpha[i < n ? 0 : i < 2 * n ? 1 : 2] * z * r;
    }
    if (!dX) continue;
    // m = raw rho, d rho / d X = -rho^3 / (nD) X.
    const C cv = -(alpha[0] * S[0] + alpha[1] * S[1] + alpha[2] * S[2]) * r * r * r / C(nD);
    for (int64_t j = 0; j < n; ++j) {
      const C pj = pre[t * n + j];
      C* o = dX + t * nD + j * D;
      const C* xj = x + j * D;
      DYNARCH_LANE_LOOP(d, D) o[d] = cv * xj[d] + (gu ? pj * gu[d] : C(0));
    }
  }
}

template <class C>
__global__ void mhc_project_forward_kernel(const C* __restrict__ V, const C* __restrict__ raw, C eps,
                                           C* __restrict__ rho, C* __restrict__ m, int64_t T, int64_t N, int64_t K) {
  DYNARCH_WARP_LOOP(t, T) {
    const C r = warp_rms_inv(V + t * N, N, eps);
    if (threadIdx.x % 32 == 0) rho[t] = r;
    DYNARCH_LANE_LOOP(i, K) m[t * K + i] = raw[t * K + i] * r;
  }
}

template <class C>
__global__ void mhc_project_backward_kernel(const C* __restrict__ V, const C* __restrict__ raw,
                                            const C* __restrict__ rho, const C* __restrict__ G, C* __restrict__ Gs,
                                            C* __restrict__ dV, int64_t T, int64_t N, int64_t K) {
  DYNARCH_WARP_LOOP(t, T) {
    const C r = rho[t];
    const C* gt = G + t * K;
    DYNARCH_LANE_LOOP(i, K) Gs[t * K + i] = gt[i] * r;
    if (!dV) continue;
    const C c = -r * r * r / C(N) * warp_sum<C>(K, [&](int64_t i) { return gt[i] * raw[t * K + i]; });
    DYNARCH_LANE_LOOP(e, N) dV[t * N + e] = c * V[t * N + e];
  }
}

}  // namespace

template <class C>
cudaError_t mhc_pre_forward(const C* X, const C* raw, const C* bias, const C* alpha, double rms_eps, double pre_eps,
                            C* rho, C* u, C* pre, C* post, C* Z, MhcShape s, cudaStream_t stream) {
  if (s.T == 0) return cudaSuccess;
  auto kernel = s.n == 4 ? mhc_pre_forward_kernel<C, 4> : mhc_pre_forward_kernel<C, 0>;
  return launch_warps(kernel, s.T, stream, X, raw, bias, alpha, C(rms_eps), C(pre_eps), rho, u, pre, post, Z, s);
}

template <class C>
cudaError_t mhc_pre_backward(const C* X, const C* raw, const C* rho, const C* pre, const C* post, const C* alpha,
                             const C* gu, const C* gpre, const C* gpost, const C* gZ, double pre_eps, C* dX, C* draw,
                             C* dlogit, C* dalpha_part, MhcShape s, cudaStream_t stream) {
  if (s.T == 0) return cudaSuccess;
  auto kernel = s.n == 4 ? mhc_pre_backward_kernel<C, 4> : mhc_pre_backward_kernel<C, 0>;
  return launch_warps(kernel, s.T, stream, X, raw, rho, pre, post, alpha, PreGrads<C>{gu, gpre, gpost, gZ}, C(pre_eps),
                      dX, draw, dlogit, dalpha_part, s);
}

template <class C>
cudaError_t mhc_project_forward(const C* V, const C* raw, double eps, C* rho, C* m, int64_t T, int64_t N, int64_t K,
                                cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  return launch_warps(mhc_project_forward_kernel<C>, T, stream, V, raw, C(eps), rho, m, T, N, K);
}

template <class C>
cudaError_t mhc_project_backward(const C* V, const C* raw, const C* rho, const C* G, C* Gs, C* dV, int64_t T,
                                 int64_t N, int64_t K, cudaStream_t stream) {
  if (T == 0) return cudaSuccess;
  return launch_warps(mhc_project_backward_kernel<C>, T, stream, V, raw, rho, G, Gs, dV, T, N, K);
}

#define DYNARCH_MHC_INSTANTIATE(C)                                                                                 \
  template cudaError_t mhc_pre_forward<C>(const C*, const C*, const C*, const C*, double, double, C*, C*, C*, C*, \
                                          C*, MhcShape, cudaStream_t);                                             \
  template cudaError_t mhc_pre_backward<C>(const C*, const C*, const C*, const C*, const C*, const C*, const C*,  \
                                           const C*, const C*, const C*, double, C*, C*, C*, C*, MhcShape,        \
                                           cudaStream_t);                                                          \
  template cudaError_t mhc_project_forward<C>(const C*, const C*, double, C*, C*, int64_t, int64_t, int64_t,     \
                                              cudaStream_t);                                                       \
  template cudaError_t mhc_project_backward<C>(const C*, const C*, const C*, const C*, C*, C*, int64_t, int64_t, \
                                               int64_t, cudaStream_t);
DYNARCH_MHC_INSTANTIATE(float)
DYNARCH_MHC_INSTANTIATE(double)

}  // namespace dynarch::cuda

// Sinkhorn-Knopp on CUDA: one thread per token's n x n matrix, held in
// registers (n = 4 is compiled with a fixed n, so the loops unroll; other n
// up to 8 use a runtime n over local arrays). The backward's iterates live in
// a global scratch laid out token-fastest ([k][e][t]), so the threads of a
// warp touch consecutive addresses.
#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/streams/sinkhorn_launch.h"

namespace dynarch::cuda {
namespace {

template <int NS>
constexpr int kCap = NS > 0 ? NS : kMaxSinkhornN;

// m = exp(m - colmax(m)); argmax[j] = the first row holding column j's max.
template <class C, int NS>
__device__ __forceinline__ void exp_colmax(C* m, int n, int* argmax) {
  for (int j = 0; j < n; ++j) {
    C mx = m[j];
    int am = 0;
    for (int i = 1; i < n; ++i)
      if (m[i * n + j] > mx) mx = m[i * n + j], am = i;
    for (int i = 0; i < n; ++i) m[i * n + j] = exp(m[i * n + j] - mx);
    argmax[j] = am;
  }
}

// Normalisation step k: even = columns, odd = rows; inv gets the n reciprocals.
template <class C, int NS>
__device__ __forceinline__ void sk_step(int k, C* m, int n, C eps, bool v4, C* inv) {
  const bool col = k % 2 == 0;
  const C e = (k == 0 && v4) ? C(0) : eps;
  if (k == 1 && v4)
    for (int q = 0; q < n * n; ++q) m[q] += eps;
  for (int a = 0; a < n; ++a) {
    C s = 0;
    for (int b = 0; b < n; ++b) s += col ? m[b * n + a] : m[a * n + b];
    const C iv = C(1) / (s + e);
    inv[a] = iv;
    for (int b = 0; b < n; ++b) (col ? m[b * n + a] : m[a * n + b]) *= iv;
  }
}

template <class C, int NS>
__global__ void sinkhorn_forward_kernel(const C* __restrict__ Z, C* __restrict__ out, SinkhornArgs a) {
  const int n = NS > 0 ? NS : a.n, nn = n * n;
  DYNARCH_GRID_LOOP(t, a.T) {
    C m[kCap<NS> * kCap<NS>], inv[kCap<NS>];
    int am[kCap<NS>];
    for (int q = 0; q < nn; ++q) m[q] = Z[t * nn + q];
    exp_colmax<C, NS>(m, n, am);
    for (int k = 0; k < 2 * a.iters; ++k) sk_step<C, NS>(k, m, n, (C)a.eps, a.v4, inv);
    for (int q = 0; q < nn; ++q) out[t * nn + q] = m[q];
  }
}

template <class C, int NS>
__global__ void sinkhorn_backward_kernel(const C* __restrict__ Z, const C* __restrict__ G, C* __restrict__ gZ,
                                         C* __restrict__ scratch, SinkhornArgs a) {
  const int n = NS > 0 ? NS : a.n, nn = n * n, steps = 2 * a.iters;
  const int64_t T = a.T;
  C* S = scratch;                              // [k][e][t]: output of step k
  C* Inv = scratch + (int64_t)steps * nn * T;  // [k][i][t]: its divisors
  DYNARCH_GRID_LOOP(t, T) {
    C m0[kCap<NS> * kCap<NS>], m[kCap<NS> * kCap<NS>], inv[kCap<NS>];
    int am[kCap<NS>];
    for (int q = 0; q < nn; ++q) m0[q] = Z[t * nn + q];
    exp_colmax<C, NS>(m0, n, am);
    for (int q = 0; q < nn; ++q) m[q] = m0[q];
    for (int k = 0; k < steps; ++k) {
      sk_step<C, NS>(k, m, n, (C)a.eps, a.v4, inv);
      for (int q = 0; q < nn; ++q) S[((int64_t)k * nn + q) * T + t] = m[q];
      for (int i = 0; i < n; ++i) Inv[((int64_t)k * n + i) * T + t] = inv[i];
    }
    // Reverse sweep; g reuses m. Row step: dY[i,j] = (G[i,j] - sum_l G[i,l] S[i,l]) inv_i,
    // column step likewise over a column. The V4 + eps passes G through.
    C* g = m;
    for (int q = 0; q < nn; ++q) g[q] = G[t * nn + q];
    for (int k = steps - 1; k >= 0; --k) {
      const bool col = k % 2 == 0;
      for (int x = 0; x < n; ++x) {
        C d = 0;
        for (int y = 0; y < n; ++y) {
          const int q = col ? y * n + x : x * n + y;
          d += g[q] * S[((int64_t)k * nn + q) * T + t];
        }
        const C iv = Inv[((int64_t)k * n + x) * T + t];
        for (int y = 0; y < n; ++y) {
          const int q = col ? y * n + x : x * n + y;
          g[q] = (g[q] - d) * iv;
        }
      }
    }
    // exp: dZ = dM0 * M0; the column max (first argmax) gets -sum of its column.
    for (int q = 0; q < nn; ++q) g[q] *= m0[q];
    for (int j = 0; j < n; ++j) {
      C s = 0;
      for (int i = 0; i < n; ++i) s += g[i * n + j];
      for (int i = 0; i < n; ++i)
        if (i == am[j]) g[i * n + j] -= s;
    }
    for (int q = 0; q < nn; ++q) gZ[t * nn + q] = g[q];
  }
}

}  // namespace

template <class C>
cudaError_t sinkhorn_forward(const C* Z, C* out, SinkhornArgs a, cudaStream_t stream) {
  if (a.n < 1 || a.n > kMaxSinkhornN || a.iters < 1) return cudaErrorInvalidValue;
  if (a.T == 0) return cudaSuccess;
  return launch(a.n == 4 ? sinkhorn_forward_kernel<C, 4> : sinkhorn_forward_kernel<C, 0>, a.T, stream, Z, out, a);
}

template <class C>
cudaError_t sinkhorn_backward(const C* Z, const C* G, C* gZ, C* scratch, SinkhornArgs a, cudaStream_t stream) {
  if (a.n < 1 || a.n > kMaxSinkhornN || a.iters < 1) return cudaErrorInvalidValue;
  if (a.T == 0) return cudaSuccess;
  return launch(a.n == 4 ? sinkhorn_backward_kernel<C, 4> : sinkhorn_backward_kernel<C, 0>, a.T, stream, Z, G, gZ,
                scratch, a);
}

template cudaError_t sinkhorn_forward<float>(const float*, float*, SinkhornArgs, cudaStream_t);
template cudaError_t sinkhorn_forward<double>(const double*, double*, SinkhornArgs, cudaStream_t);
template cudaError_t sinkhorn_backward<float>(const float*, const float*, float*, float*, SinkhornArgs, cudaStream_t);
template cudaError_t sinkhorn_backward<double>(const double*, const double*, double*, double*, SinkhornArgs,
                                               cudaStream_t);

}  // namespace dynarch::cuda

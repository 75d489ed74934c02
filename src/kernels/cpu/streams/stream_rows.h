// Per-token row kernels shared by the stream-mixing ops (stream_mix.cpp) and the
// fused mHC input (mhc_input.cpp). Internal header.
//
// row_dot: dot product of two contiguous rows. A single vector accumulator makes the loop wait on the FMA
// latency (perf: ~45 % of the mhc_pre backward); 32 lanes in a fixed-size inner
// loop give GCC four independent vector accumulators without -ffast-math. The
// summation order is fixed, so results are deterministic.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace dynarch {

// Runs f(std::integral_constant<int, N>) for n = N in 1..4 and returns true;
// false otherwise (the callers' runtime-n loops).
template <class F>
inline bool with_fixed_n(int64_t n, F&& f) {
  switch (n) {
    case 1: f(std::integral_constant<int, 1>{}); return true;
    case 2: f(std::integral_constant<int, 2>{}); return true;
    case 3: f(std::integral_constant<int, 3>{}); return true;
    case 4: f(std::integral_constant<int, 4>{}); return true;
  }
  return false;
}

template <class C>
inline C row_dot(const C* a, const C* b, int64_t n) {
  constexpr int W = 32;
  C acc[W] = {};
  int64_t i = 0;
  for (; i + W <= n; i += W)
    for (int l = 0; l < W; ++l) acc[l] += a[i + l] * b[i + l];
  C s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int l = 0; l < W; ++l) s += acc[l];
  return s;
}

// out[a * NB + q] = <A[a], B[q]> for all pairs in one pass: NA + NB row loads
// per NA·NB products. Each pair has U vector accumulators (U = 2 hides the FMA
// latency when there are few pairs); GCC vector types keep them in registers,
// where a 2-D scalar array stayed on the stack. For NA·NB ≈ 20 with U = 1 this
// needs the 32 vector registers of AVX-512 hosts (stream_rows_wide()).
template <int NA, int NB, int U, class C>
inline void grid_dot(const C* const (&A)[NA], const C* const (&B)[NB], int64_t n, C* out) {
  typedef C V __attribute__((vector_size(32)));
  constexpr int L = sizeof(V) / sizeof(C), W = U * L;
  auto load = [](const C* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  };
  V acc[NA][NB][U] = {};
  int64_t i = 0;
  for (; i + W <= n; i += W)
    for (int u = 0; u < U; ++u) {
      V b[NB];
      for (int q = 0; q < NB; ++q) b[q] = load(B[q] + i + u * L);
      for (int a = 0; a < NA; ++a) {
        const V x = load(A[a] + i + u * L);
        for (int q = 0; q < NB; ++q) acc[a][q][u] += x * b[q];
      }
    }
  for (int a = 0; a < NA; ++a)
    for (int q = 0; q < NB; ++q) {
      C s = 0;
      for (int64_t k = i; k < n; ++k) s += A[a][k] * B[q][k];
      for (int l = 0; l < L; ++l)
        for (int u = 0; u < U; ++u) s += acc[a][q][u][l];
      out[a * NB + q] = s;
    }
}

// out[i] = <a[i], b> for NA rows against one shared row b (loaded once per step
// for all NA products; row_dot loads both rows per product).
template <int NA, class C>
inline void multi_dot(const C* const (&a)[NA], const C* b, int64_t n, C* out) {
  const C* const bs[1] = {b};
  grid_dot<NA, 1, 2>(a, bs, n, out);
}

// AVX-512 build of the n = 4 fp32 merge backward (stream_rows_wide.cpp): the
// same code with 32 vector registers, so its 20 dot products run in one pass
// and its 16 mixing weights stay in registers (1.8x faster on rows in cache).
bool stream_rows_wide();

// The pending merge of the previous sub-layer: X = R Xp + post^T y (stream_mix.h).
template <class C>
struct Merge {
  const C *xp = nullptr, *R = nullptr, *post = nullptr, *y = nullptr;
};

void merge_token_backward_4f_wide(const Merge<float>& m, int64_t t, int64_t D, const float* G, float* dxp, float* dR,
                                  float* dpost, float* dy);

// Fixed-n kernels (n = N known at compile time): one pass over D computes all
// n output rows, each written once, instead of n read-modify-write passes per
// row (perf: those passes were most of the merge). Same summation order as the
// runtime-n loops below.
template <int N, class C>
inline void merge_token_n(const Merge<C>& m, int64_t t, int64_t D, C* __restrict out) {
  const C* __restrict xp = m.xp + t * N * D;
  const C* __restrict yt = m.y + t * D;
  C r[N][N], p[N];
  for (int k = 0; k < N; ++k) {
    p[k] = m.post[t * N + k];
    for (int j = 0; j < N; ++j) r[k][j] = m.R[(t * N + k) * N + j];
  }
  for (int64_t d = 0; d < D; ++d) {
    C x[N];
    for (int j = 0; j < N; ++j) x[j] = xp[j * D + d];
    for (int k = 0; k < N; ++k) {
      C s = p[k] * yt[d];
      for (int j = 0; j < N; ++j) s += r[k][j] * x[j];
      out[k * D + d] = s;
    }
  }
}

template <int N, class C, bool Wide = false>
inline void merge_token_backward_n(const Merge<C>& m, int64_t t, int64_t D, const C* __restrict G, C* __restrict dxp,
                                   C* dR, C* dpost, C* __restrict dy) {
  const C* xp = m.xp + t * N * D;
  const C* yt = m.y + t * D;
  C r[N][N], p[N];
  for (int k = 0; k < N; ++k) {
    p[k] = m.post[t * N + k];
    for (int j = 0; j < N; ++j) r[k][j] = m.R[(t * N + k) * N + j];
  }
  if (dxp)  // separate loops: a store under a condition kept GCC from vectorising
    for (int64_t d = 0; d < D; ++d) {
      C g[N];
      for (int k = 0; k < N; ++k) g[k] = G[k * D + d];
      for (int j = 0; j < N; ++j) {
        C s = r[0][j] * g[0];
        for (int k = 1; k < N; ++k) s += r[k][j] * g[k];
        dxp[j * D + d] = s;
      }
    }
  if (dy)
    for (int64_t d = 0; d < D; ++d) {
      C s = p[0] * G[d];
      for (int k = 1; k < N; ++k) s += p[k] * G[k * D + d];
      dy[d] = s;
    }
  if (!dR && !dpost) return;
  const C* rows[N + 1];
  for (int j = 0; j < N; ++j) rows[j] = xp + j * D;
  rows[N] = yt;
  if constexpr (Wide) {  // all <G_k, Xp_j> and <G_k, y> in one pass
    const C* g[N];
    for (int k = 0; k < N; ++k) g[k] = G + k * D;
    C o[N * (N + 1)];
    grid_dot<N, N + 1, 1>(g, rows, D, o);
    for (int k = 0; k < N; ++k) {
      if (dR)
        for (int j = 0; j < N; ++j) dR[k * N + j] = o[k * (N + 1) + j];
      if (dpost) dpost[k] = o[k * (N + 1) + N];
    }
    return;
  }
  for (int k = 0; k < N; ++k) {  // <G_k, Xp_j> for all j and <G_k, y> in one pass over G_k
    C o[N + 1];
    multi_dot<N + 1>(rows, G + k * D, D, o);
    if (dR)
      for (int j = 0; j < N; ++j) dR[k * N + j] = o[j];
    if (dpost) dpost[k] = o[N];
  }
}

// u = sum_j pre[j] x_j over the n rows x (n, D) of one token: one pass, each
// output written once (fixed n), in the order of the runtime-n loop.
template <int N, class C>
inline void premix_token_n(const C* __restrict x, const C* pre, int64_t D, C* __restrict u) {
  C p[N];
  for (int j = 0; j < N; ++j) p[j] = pre[j];
  for (int64_t d = 0; d < D; ++d) {
    C s = p[0] * x[d];
    for (int j = 1; j < N; ++j) s += p[j] * x[j * D + d];
    u[d] = s;
  }
}
template <class C>
inline void premix_token(const C* x, const C* pre, int64_t n, int64_t D, C* u) {
  if (with_fixed_n(n, [&](auto N) { premix_token_n<decltype(N)::value>(x, pre, D, u); })) return;
  for (int64_t d = 0; d < D; ++d) u[d] = pre[0] * x[d];
  for (int64_t j = 1; j < n; ++j)
    for (int64_t d = 0; d < D; ++d) u[d] += pre[j] * x[j * D + d];
}

// out[j] = <x_j, b> for the n rows x (n, D) of one token.
template <int N, class C>
inline void stream_dots_n(const C* x, const C* b, int64_t D, C* out) {
  const C* rows[N];
  for (int j = 0; j < N; ++j) rows[j] = x + j * D;
  multi_dot<N>(rows, b, D, out);
}
template <class C>
inline void stream_dots(const C* x, const C* b, int64_t n, int64_t D, C* out) {
  if (with_fixed_n(n, [&](auto N) { stream_dots_n<decltype(N)::value>(x, b, D, out); })) return;
  for (int64_t j = 0; j < n; ++j) out[j] = row_dot(x + j * D, b, D);
}

// X[t] = sum_j R[t,k,j] Xp[t,j] + post[t,k] y[t] for one token (rows in L1).
template <class C>
inline void merge_token(const Merge<C>& m, int64_t t, int64_t n, int64_t D, C* out) {
  if (with_fixed_n(n, [&](auto N) { merge_token_n<decltype(N)::value>(m, t, D, out); })) return;
  const C* xp = m.xp + t * n * D;
  const C* yt = m.y + t * D;
  for (int64_t k = 0; k < n; ++k) {
    C* o = out + k * D;
    const C pk = m.post[t * n + k];
    for (int64_t d = 0; d < D; ++d) o[d] = pk * yt[d];
    for (int64_t j = 0; j < n; ++j) {
      const C r = m.R[(t * n + k) * n + j];
      const C* xj = xp + j * D;
      for (int64_t d = 0; d < D; ++d) o[d] += r * xj[d];
    }
  }
}

// Backward of merge_token given G = dX[t] (n, D): dXp, dR, dpost, dy of the
// token (rows of the token; a null output is skipped).
template <class C>
inline void merge_token_backward(const Merge<C>& m, int64_t t, int64_t n, int64_t D, const C* G, C* dxp, C* dR, C* dpost,
                          C* dy) {
  if constexpr (std::is_same_v<C, float>)
    if (n == 4 && stream_rows_wide()) return merge_token_backward_4f_wide(m, t, D, G, dxp, dR, dpost, dy);
  if (with_fixed_n(n, [&](auto N) { merge_token_backward_n<decltype(N)::value>(m, t, D, G, dxp, dR, dpost, dy); }))
    return;
  const C* xp = m.xp + t * n * D;
  const C* yt = m.y + t * D;
  for (int64_t k = 0; k < n; ++k) {
    const C* gk = G + k * D;
    const C pk = m.post[t * n + k];
    for (int64_t j = 0; j < n; ++j) {
      const C r = m.R[(t * n + k) * n + j];
      if (dxp) {
        C* dj = dxp + j * D;
        if (k == 0)
          for (int64_t d = 0; d < D; ++d) dj[d] = r * gk[d];
        else
          for (int64_t d = 0; d < D; ++d) dj[d] += r * gk[d];
      }
      if (dR) dR[k * n + j] = row_dot(gk, xp + j * D, D);
    }
    if (dpost) dpost[k] = row_dot(gk, yt, D);
    if (dy) {
      if (k == 0)
        for (int64_t d = 0; d < D; ++d) dy[d] = pk * gk[d];
      else
        for (int64_t d = 0; d < D; ++d) dy[d] += pk * gk[d];
    }
  }
}

}  // namespace dynarch

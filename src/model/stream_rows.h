// Per-token row kernels shared by the stream-mixing ops (hc_ops.cpp) and the
// fused mHC input (mhc_fused.cpp). Internal header.
//
// row_dot: dot product of two contiguous rows. A single vector accumulator makes the loop wait on the FMA
// latency (perf: ~45 % of the mhc_pre backward); 32 lanes in a fixed-size inner
// loop give GCC four independent vector accumulators without -ffast-math. The
// summation order is fixed, so results are deterministic.
#pragma once
#include <cstdint>

namespace dynarch {

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

// The pending merge of the previous sub-layer: X = R Xp + post^T y (hc_ops.h).
template <class C>
struct Merge {
  const C *xp = nullptr, *R = nullptr, *post = nullptr, *y = nullptr;
};

// X[t] = sum_j R[t,k,j] Xp[t,j] + post[t,k] y[t] for one token (rows in L1).
template <class C>
inline void merge_token(const Merge<C>& m, int64_t t, int64_t n, int64_t D, C* out) {
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

#include "kernels/cpu/mamba/ssd_scan.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#ifdef __AVX__
#include <immintrin.h>
#endif

namespace dynarch::fused {

namespace {

// 32-byte vectors (GCC vector extensions): 8 floats or 4 doubles. Headdims
// that are a multiple of the lane count take the vector kernels (PP = P);
// others the scalar ones (PP = 0).
template <class C>
struct VecT;
template <>
struct VecT<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VecT<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <class C>
using Vec = typename VecT<C>::type;
template <class C>
constexpr int kLanes = 32 / sizeof(C);

template <class C>
inline Vec<C> vload(const C* p) {
  Vec<C> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class C>
inline void vstore(C* p, const Vec<C>& v) {
  std::memcpy(p, &v, sizeof(v));
}

// out[i] += sum of the lanes of a[i] for i < n (8 at a time by a hadd tree).
template <class C>
inline void add_lane_sums(const Vec<C>* a, int64_t n, C* out) {
  int64_t i = 0;
#ifdef __AVX__
  if constexpr (std::is_same_v<C, float>) {
    for (; i + 8 <= n; i += 8) {
      const __m256* v = reinterpret_cast<const __m256*>(a + i);
      __m256 h12 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
      __m256 h34 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
      __m256 r = _mm256_add_ps(_mm256_permute2f128_ps(h12, h34, 0x20), _mm256_permute2f128_ps(h12, h34, 0x31));
      _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(out + i), r));
    }
  }
#endif
  for (; i < n; ++i) {
    C t = 0;
    for (int l = 0; l < kLanes<C>; ++l) t += a[i][l];
    out[i] += t;
  }
}

// Per-task scratch.
template <class C>
struct Scratch {
  std::vector<C> u, du, acc;
  std::vector<Vec<C>> accB, accC;
  Scratch(int64_t P, int64_t N) : u(P), du(P), acc(P), accB(N), accC(N) {}
};

// One step of one head, in place: S = dA S + B (x) u (u = dl x); y = S C + D x.
template <class C, int PP>
inline void head_forward(C* S, const C* x, const C* Bv, const C* Cv, C dl, C dA, C Dh, int64_t N, int64_t P,
                         C* y, Scratch<C>& w) {
  if constexpr (PP == 0) {
    for (int64_t p = 0; p < P; ++p) {
      w.u[p] = dl * x[p];
      w.acc[p] = 0;
    }
    for (int64_t n = 0; n < N; ++n) {
      C* Sn = S + n * P;
      for (int64_t p = 0; p < P; ++p) {
        const C v = dA * Sn[p] + Bv[n] * w.u[p];
        Sn[p] = v;
        w.acc[p] += Cv[n] * v;
      }
    }
    for (int64_t p = 0; p < P; ++p) y[p] = w.acc[p] + Dh * x[p];
  } else {
    using V = Vec<C>;
    constexpr int W = kLanes<C>, NV = PP / W;
    V u[NV], acc[NV];
    for (int j = 0; j < NV; ++j) {
      u[j] = dl * vload(x + j * W);
      acc[j] = V{};
    }
    for (int64_t n = 0; n < N; ++n) {
      C* Sn = S + n * PP;
      const C bn = Bv[n], cn = Cv[n];
      for (int j = 0; j < NV; ++j) {
        const V v = dA * vload(Sn + j * W) + bn * u[j];
        vstore(Sn + j * W, v);
        acc[j] += cn * v;
      }
    }
    for (int j = 0; j < NV; ++j) vstore(y + j * W, acc[j] + Dh * vload(x + j * W));
  }
}

// The state update alone, out of place (backward recomputation).
template <class C, int PP>
inline void head_state(const C* S, C* out, const C* x, const C* Bv, C dl, C dA, int64_t N, int64_t P, Scratch<C>& w) {
  if constexpr (PP == 0) {
    for (int64_t p = 0; p < P; ++p) w.u[p] = dl * x[p];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p) out[n * P + p] = dA * S[n * P + p] + Bv[n] * w.u[p];
  } else {
    using V = Vec<C>;
    constexpr int W = kLanes<C>, NV = PP / W;
    V u[NV];
    for (int j = 0; j < NV; ++j) u[j] = dl * vload(x + j * W);
    for (int64_t n = 0; n < N; ++n) {
      const C bn = Bv[n];
      for (int j = 0; j < NV; ++j) vstore(out + n * PP + j * W, dA * vload(S + n * PP + j * W) + bn * u[j]);
    }
  }
}

struct HeadGrads {
  double ddA, dxu, dyx;  // dLoss/d decay, sum_p du_p x_p, sum_p dy_p x_p
};

// Backward of one step of one head. G (in: dLoss/dS_t from later steps, out:
// dLoss/dS_{t-1}); St, Sp the states after and before the step. Adds dB, dC
// into bc[0..N), bc[N..2N); writes dx.
template <class C, int PP>
inline HeadGrads head_backward(C* G, const C* St, const C* Sp, const C* x, const C* Bv, const C* Cv, const C* dy,
                               C dl, C dA, C Dh, int64_t N, int64_t P, C* bc, C* dx, Scratch<C>& w) {
  C ddA = 0, dxu = 0, dyx = 0;
  if constexpr (PP == 0) {
    for (int64_t p = 0; p < P; ++p) {
      w.u[p] = dl * x[p];
      w.du[p] = 0;
    }
    for (int64_t n = 0; n < N; ++n) {
      C accB = 0, accC = 0;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t i = n * P + p;
        const C g = G[i] + Cv[n] * dy[p];
        accC += St[i] * dy[p];
        w.du[p] += g * Bv[n];
        accB += g * w.u[p];
        ddA += g * Sp[i];
        G[i] = g * dA;
      }
      bc[n] += accB;
      bc[N + n] += accC;
    }
    for (int64_t p = 0; p < P; ++p) {
      dx[p] = dl * w.du[p] + Dh * dy[p];
      dxu += w.du[p] * x[p];
      dyx += dy[p] * x[p];
    }
  } else {
    using V = Vec<C>;
    constexpr int W = kLanes<C>, NV = PP / W;
    V u[NV], du[NV], d[NV], vdA{};
    for (int j = 0; j < NV; ++j) {
      u[j] = dl * vload(x + j * W);
      d[j] = vload(dy + j * W);
      du[j] = V{};
    }
    for (int64_t n = 0; n < N; ++n) {
      const int64_t o = n * PP;
      const C bn = Bv[n], cn = Cv[n];
      V aB{}, aC{};
      for (int j = 0; j < NV; ++j) {
        const V g = vload(G + o + j * W) + cn * d[j];
        aC += vload(St + o + j * W) * d[j];
        du[j] += g * bn;
        aB += g * u[j];
        vdA += g * vload(Sp + o + j * W);
        vstore(G + o + j * W, g * dA);
      }
      w.accB[n] = aB;
      w.accC[n] = aC;
    }
    add_lane_sums<C>(w.accB.data(), N, bc);
    add_lane_sums<C>(w.accC.data(), N, bc + N);
    V vxu{}, vyx{};
    for (int j = 0; j < NV; ++j) {
      const V xv = vload(x + j * W);
      vstore(dx + j * W, dl * du[j] + Dh * d[j]);
      vxu += du[j] * xv;
      vyx += d[j] * xv;
    }
    for (int l = 0; l < W; ++l) {
      ddA += vdA[l];
      dxu += vxu[l];
      dyx += vyx[l];
    }
  }
  return {(double)ddA, (double)dxu, (double)dyx};
}

template <class C, int PP>
void forward_impl(const C* xc, const C* delta, const C* decay, const C* Dp, const C* init, C* y, C* ckpt, C* fin,
                  const ScanShape& s) {
  const int64_t N = s.N, P = s.P, H = s.H, NP = N * P;
  at::parallel_for(0, s.B * H, 1, [&](int64_t i0, int64_t i1) {
    std::vector<C> S(NP);
    Scratch<C> w(P, N);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      for (int64_t p = 0; p < P; ++p)
        for (int64_t n = 0; n < N; ++n) S[n * P + p] = init ? init[(i * P + p) * N + n] : C(0);
      for (int64_t t = 0; t < s.L; ++t) {
        if (t % kScanCheckpoint == 0) std::copy(S.begin(), S.end(), ckpt + (i * s.nck + t / kScanCheckpoint) * NP);
        const int64_t r = b * s.L + t;
        const C* row = xc + r * s.Cd;
        head_forward<C, PP>(S.data(), row + h * P, row + s.Di, row + s.Di + N, delta[r * H + h], decay[r * H + h],
                            Dp[h], N, P, y + r * s.Di + h * P, w);
      }
      for (int64_t p = 0; p < P; ++p)
        for (int64_t n = 0; n < N; ++n) fin[(i * P + p) * N + n] = S[n * P + p];
    }
  });
}

template <class C, int PP>
void backward_impl(const C* xc, const C* delta, const C* decay, const C* A_log, const C* Dp, const C* ckpt,
                   const C* gy, C* dxc, C* bc_part, int64_t G, C* ddelta, C* dD, C* dAlog, const ScanShape& s) {
  const int64_t N = s.N, P = s.P, H = s.H, NP = N * P, hg = (H + G - 1) / G;
  at::parallel_for(0, s.B * G, 1, [&](int64_t i0, int64_t i1) {
    std::vector<C> Gs(hg * NP), Sbuf((kScanCheckpoint + 1) * NP);
    Scratch<C> w(P, N);
    for (int64_t task = i0; task < i1; ++task) {
      const int64_t b = task / G, g = task % G, h0 = g * hg, h1 = std::min(H, h0 + hg);
      std::fill(Gs.begin(), Gs.end(), C(0));
      for (int64_t blk = s.nck - 1; blk >= 0; --blk) {
        const int64_t t0 = blk * kScanCheckpoint, t1 = std::min(s.L, t0 + kScanCheckpoint);
        for (int64_t h = h0; h < h1; ++h) {
          const C ah = -std::exp(A_log[h]);
          const C* ck = ckpt + ((b * H + h) * s.nck + blk) * NP;
          std::copy(ck, ck + NP, Sbuf.begin());
          for (int64_t t = t0; t < t1; ++t) {  // recompute the block's states
            const int64_t r = b * s.L + t;
            const C* row = xc + r * s.Cd;
            head_state<C, PP>(Sbuf.data() + (t - t0) * NP, Sbuf.data() + (t - t0 + 1) * NP, row + h * P, row + s.Di,
                              delta[r * H + h], decay[r * H + h], N, P, w);
          }
          C* Gh = Gs.data() + (h - h0) * NP;  // dLoss/dS_t, carried backwards
          for (int64_t t = t1 - 1; t >= t0; --t) {
            const int64_t r = b * s.L + t;
            const C* row = xc + r * s.Cd;
            const C* St = Sbuf.data() + (t - t0 + 1) * NP;
            const C dl = delta[r * H + h], dA = decay[r * H + h];
            C* bc = G == 1 ? dxc + r * s.Cd + s.Di : bc_part + ((g * s.B + b) * s.L + t) * 2 * N;
            const HeadGrads hgr = head_backward<C, PP>(Gh, St, St - NP, row + h * P, row + s.Di, row + s.Di + N,
                                                       gy + r * s.Di + h * P, dl, dA, Dp[h], N, P, bc,
                                                       dxc + r * s.Cd + h * P, w);
            const C dlin = (C)hgr.ddA * dA;  // d/d(delta a) of exp(delta a)
            ddelta[r * H + h] = (C)hgr.dxu + dlin * ah;
            dD[b * H + h] += (C)hgr.dyx;
            dAlog[b * H + h] += dlin * dl * ah;
          }
        }
      }
    }
  });
}

template <class F>
void dispatch_headdim(int64_t P, F&& f) {
  if (P == 32) f(std::integral_constant<int, 32>{});
  else if (P == 64) f(std::integral_constant<int, 64>{});
  else if (P == 16) f(std::integral_constant<int, 16>{});
  else if (P == 8) f(std::integral_constant<int, 8>{});
  else f(std::integral_constant<int, 0>{});
}

}  // namespace

template <class C>
void ssd_scan_forward(const C* xc, const C* delta, const C* decay, const C* D, const C* init, C* y, C* ckpt,
                      C* fin, const ScanShape& s) {
  dispatch_headdim(s.P, [&](auto PP) {
    forward_impl<C, decltype(PP)::value>(xc, delta, decay, D, init, y, ckpt, fin, s);
  });
}

template <class C>
void ssd_scan_backward(const C* xc, const C* delta, const C* decay, const C* A_log, const C* D, const C* ckpt,
                       const C* gy, C* dxc, C* bc_part, int64_t G, C* ddelta, C* dD, C* dA_log, const ScanShape& s) {
  dispatch_headdim(s.P, [&](auto PP) {
    backward_impl<C, decltype(PP)::value>(xc, delta, decay, A_log, D, ckpt, gy, dxc, bc_part, G, ddelta, dD, dA_log,
                                          s);
  });
}

template void ssd_scan_forward<float>(const float*, const float*, const float*, const float*, const float*, float*,
                                      float*, float*, const ScanShape&);
template void ssd_scan_forward<double>(const double*, const double*, const double*, const double*, const double*,
                                       double*, double*, double*, const ScanShape&);
template void ssd_scan_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                       const float*, const float*, float*, float*, int64_t, float*, float*, float*,
                                       const ScanShape&);
template void ssd_scan_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                        const double*, const double*, double*, double*, int64_t, double*, double*,
                                        double*, const ScanShape&);

}  // namespace dynarch::fused

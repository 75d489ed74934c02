#include "model/skinny_gemm.h"

#include <algorithm>
#include <atomic>

#if defined(__x86_64__)
#include <immintrin.h>
#define DYNARCH_SKINNY_AVX512 1
#endif

namespace dynarch {

namespace {
std::atomic<int> g_force_blas{0};
}  // namespace

BlasSkinnyScope::BlasSkinnyScope() { ++g_force_blas; }
BlasSkinnyScope::~BlasSkinnyScope() { --g_force_blas; }

void pack_phi(const float* phi, int64_t K, int64_t nD, PackedPhi& out) {
  out.nD = nD;
  out.K = K;
  out.Kp = K <= 16 ? 16 : 32;
  out.data.assign(nD * out.Kp, 0.f);
  for (int64_t o = 0; o < K; ++o)
    for (int64_t k = 0; k < nD; ++k) out.data[k * out.Kp + o] = phi[o * nD + k];
}

void skinny_project_reference(int64_t M, int64_t nD, int64_t K, const float* X, const float* phi, float* raw) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t o = 0; o < K; ++o) {
      float s = 0;
      for (int64_t k = 0; k < nD; ++k) s += X[i * nD + k] * phi[o * nD + k];
      raw[i * K + o] = s;
    }
}

void skinny_expand_add_reference(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* phi, float* dX) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t o = 0; o < K; ++o)
      for (int64_t k = 0; k < nD; ++k) dX[i * nD + k] += Gr[i * K + o] * phi[o * nD + k];
}

void skinny_dphi_add_reference(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* X, float* dphi) {
  for (int64_t o = 0; o < K; ++o)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < nD; ++k) dphi[o * nD + k] += Gr[i * K + o] * X[i * nD + k];
}

#ifdef DYNARCH_SKINNY_AVX512

bool skinny_gemm_available(int64_t K) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return avx512 && K >= 1 && K <= 32 && g_force_blas.load(std::memory_order_relaxed) == 0;
}

namespace {

__mmask16 lanes(int64_t count) {  // mask of the first min(count, 16) lanes (none if count <= 0)
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

// MR rows × (16·NV) outputs in registers; one broadcast per row and input element.
template <int MR, int NV>
__attribute__((target("avx512f"))) void project_tile(int64_t nD, int64_t K, const float* X, const float* Bp,
                                                     float* raw) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < nD; ++k) {
    __m512 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(Bp + k * 16 * NV + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 x = _mm512_set1_ps(X[i * nD + k]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(x, b[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(raw + i * K + 16 * v, lanes(K - 16 * v), acc[i][v]);
}

template <int NV>
void project_rows(int64_t M, const float* X, const PackedPhi& p, float* raw) {
  const int64_t nD = p.nD, K = p.K;
  int64_t r = 0;
  for (; r + 8 <= M; r += 8) project_tile<8, NV>(nD, K, X + r * nD, p.data.data(), raw + r * K);
  const float *x = X + r * nD, *b = p.data.data();
  float* o = raw + r * K;
  switch (M - r) {
    case 1: return project_tile<1, NV>(nD, K, x, b, o);
    case 2: return project_tile<2, NV>(nD, K, x, b, o);
    case 3: return project_tile<3, NV>(nD, K, x, b, o);
    case 4: return project_tile<4, NV>(nD, K, x, b, o);
    case 5: return project_tile<5, NV>(nD, K, x, b, o);
    case 6: return project_tile<6, NV>(nD, K, x, b, o);
    case 7: return project_tile<7, NV>(nD, K, x, b, o);
  }
}

// MR rows × 32 columns of dX in registers, updated by all K rows of φ. Masked
// loads only for the last, partial chunk: with a full mask they still ran at
// less than half the speed here.
template <int MR, bool Tail>
__attribute__((target("avx512f"))) void expand_tile(int64_t nD, int64_t K, const float* Gr, const float* phi, float* dX,
                                                    __mmask16 m0, __mmask16 m1) {
  auto load = [&](const float* p, __mmask16 m) __attribute__((target("avx512f"))) {
    return Tail ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
  };
  __m512 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = load(dX + i * nD, m0);
    acc[i][1] = load(dX + i * nD + 16, m1);
  }
  for (int64_t o = 0; o < K; ++o) {
    const __m512 b0 = load(phi + o * nD, m0), b1 = load(phi + o * nD + 16, m1);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 g = _mm512_set1_ps(Gr[i * K + o]);
      acc[i][0] = _mm512_fmadd_ps(g, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(g, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    if (Tail) {
      _mm512_mask_storeu_ps(dX + i * nD, m0, acc[i][0]);
      _mm512_mask_storeu_ps(dX + i * nD + 16, m1, acc[i][1]);
    } else {
      _mm512_storeu_ps(dX + i * nD, acc[i][0]);
      _mm512_storeu_ps(dX + i * nD + 16, acc[i][1]);
    }
  }
}

template <int MR>
void expand_rows(int64_t nD, int64_t K, const float* Gr, const float* phi, float* dX) {
  int64_t c = 0;
  for (; c + 32 <= nD; c += 32) expand_tile<MR, false>(nD, K, Gr, phi + c, dX + c, 0, 0);
  if (c < nD) expand_tile<MR, true>(nD, K, Gr, phi + c, dX + c, lanes(nD - c), lanes(nD - c - 16));
}

// OR rows of dφ × 32 columns in registers, updated by the M token rows of X.
template <int OR, bool Tail>
__attribute__((target("avx512f"))) void dphi_tile(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* X,
                                                  float* dphi, __mmask16 m0, __mmask16 m1) {
  auto load = [&](const float* p, __mmask16 m) __attribute__((target("avx512f"))) {
    return Tail ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
  };
  __m512 acc[OR][2];
#pragma GCC unroll 8
  for (int o = 0; o < OR; ++o) {
    acc[o][0] = load(dphi + o * nD, m0);
    acc[o][1] = load(dphi + o * nD + 16, m1);
  }
  for (int64_t i = 0; i < M; ++i) {
    const __m512 x0 = load(X + i * nD, m0), x1 = load(X + i * nD + 16, m1);
#pragma GCC unroll 8
    for (int o = 0; o < OR; ++o) {
      const __m512 g = _mm512_set1_ps(Gr[i * K + o]);
      acc[o][0] = _mm512_fmadd_ps(g, x0, acc[o][0]);
      acc[o][1] = _mm512_fmadd_ps(g, x1, acc[o][1]);
    }
  }
  for (int o = 0; o < OR; ++o) {
    if (Tail) {
      _mm512_mask_storeu_ps(dphi + o * nD, m0, acc[o][0]);
      _mm512_mask_storeu_ps(dphi + o * nD + 16, m1, acc[o][1]);
    } else {
      _mm512_storeu_ps(dphi + o * nD, acc[o][0]);
      _mm512_storeu_ps(dphi + o * nD + 16, acc[o][1]);
    }
  }
}

template <int OR>
void dphi_rows(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* X, float* dphi) {
  int64_t c = 0;
  for (; c + 32 <= nD; c += 32) dphi_tile<OR, false>(M, nD, K, Gr, X + c, dphi + c, 0, 0);
  if (c < nD) dphi_tile<OR, true>(M, nD, K, Gr, X + c, dphi + c, lanes(nD - c), lanes(nD - c - 16));
}

}  // namespace

void skinny_dphi_add(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* X, float* dphi) {
  int64_t o = 0;
  for (; o + 8 <= K; o += 8) dphi_rows<8>(M, nD, K, Gr + o, X, dphi + o * nD);
  const float* g = Gr + o;
  float* d = dphi + o * nD;
  switch (K - o) {
    case 1: return dphi_rows<1>(M, nD, K, g, X, d);
    case 2: return dphi_rows<2>(M, nD, K, g, X, d);
    case 3: return dphi_rows<3>(M, nD, K, g, X, d);
    case 4: return dphi_rows<4>(M, nD, K, g, X, d);
    case 5: return dphi_rows<5>(M, nD, K, g, X, d);
    case 6: return dphi_rows<6>(M, nD, K, g, X, d);
    case 7: return dphi_rows<7>(M, nD, K, g, X, d);
  }
}

void skinny_project(int64_t M, const float* X, const PackedPhi& p, float* raw) {
  if (p.Kp == 16)
    project_rows<1>(M, X, p, raw);
  else
    project_rows<2>(M, X, p, raw);
}

void skinny_expand_add(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* phi, float* dX) {
  int64_t r = 0;
  for (; r + 8 <= M; r += 8) expand_rows<8>(nD, K, Gr + r * K, phi, dX + r * nD);
  const float* g = Gr + r * K;
  float* o = dX + r * nD;
  switch (M - r) {
    case 1: return expand_rows<1>(nD, K, g, phi, o);
    case 2: return expand_rows<2>(nD, K, g, phi, o);
    case 3: return expand_rows<3>(nD, K, g, phi, o);
    case 4: return expand_rows<4>(nD, K, g, phi, o);
    case 5: return expand_rows<5>(nD, K, g, phi, o);
    case 6: return expand_rows<6>(nD, K, g, phi, o);
    case 7: return expand_rows<7>(nD, K, g, phi, o);
  }
}

#else  // no AVX-512 kernels on this architecture: callers use BLAS

void skinny_dphi_add(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* X, float* dphi) {
  skinny_dphi_add_reference(M, nD, K, Gr, X, dphi);
}

bool skinny_gemm_available(int64_t) { return false; }
void skinny_project(int64_t M, const float* X, const PackedPhi& p, float* raw) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t o = 0; o < p.K; ++o) {
      float s = 0;
      for (int64_t k = 0; k < p.nD; ++k) s += X[i * p.nD + k] * p.data[k * p.Kp + o];
      raw[i * p.K + o] = s;
    }
}
void skinny_expand_add(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* phi, float* dX) {
  skinny_expand_add_reference(M, nD, K, Gr, phi, dX);
}

#endif

}  // namespace dynarch

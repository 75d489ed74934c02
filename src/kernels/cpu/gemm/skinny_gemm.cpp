#include "kernels/cpu/gemm/skinny_gemm.h"

#include <algorithm>
#include <type_traits>

#include "core/forward_context.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define DYNARCH_SKINNY_AVX512 1
#endif

namespace dynarch {

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
  return avx512 && K >= 1 && K <= 32 && !forward_context().variants.blas_skinny;
}

namespace {

__mmask16 lanes(int64_t count) {  // mask of the first min(count, 16) lanes (none if count <= 0)
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
}

// Calls f(std::integral_constant<int, R>) for R = count in 1..8, so that the
// tiles below exist for every remainder of 8 rows.
template <class F>
void with_count(int64_t count, F&& f) {
  switch (count) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 8: return f(std::integral_constant<int, 8>{});
  }
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
  for (int64_t r = 0; r < M; r += 8)
    with_count(std::min<int64_t>(8, M - r), [&](auto count) {
      project_tile<decltype(count)::value, NV>(p.nD, p.K, X + r * p.nD, p.data.data(), raw + r * p.K);
    });
}

// Y[r, c : c + 32) += Σ_l A(r, l) · S[l, c : c + 32) for R rows of Y, with
// A(r, l) = a[r·lda + l] (or a[l·lda + r] if AT) and rows of Y and S nD apart:
// both dX += Gr · φ (S = φ, A = Gr) and dφ += Grᵀ · X (S = X, A = Grᵀ). The R × 32 tile stays in
// registers. Masked loads only for the last, partial chunk: with a full mask
// they still ran at less than half the speed here.
template <int R, bool Tail, bool AT>
__attribute__((target("avx512f"))) void rank_tile(int64_t L, const float* a, int64_t lda, const float* S, float* Y,
                                                  int64_t nD, __mmask16 m0, __mmask16 m1) {
  auto load = [&](const float* p, __mmask16 m) __attribute__((target("avx512f"))) {
    return Tail ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
  };
  __m512 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    acc[r][0] = load(Y + r * nD, m0);
    acc[r][1] = load(Y + r * nD + 16, m1);
  }
  for (int64_t l = 0; l < L; ++l) {
    const __m512 s0 = load(S + l * nD, m0), s1 = load(S + l * nD + 16, m1);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 g = _mm512_set1_ps(AT ? a[l * lda + r] : a[r * lda + l]);
      acc[r][0] = _mm512_fmadd_ps(g, s0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(g, s1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    if (Tail) {
      _mm512_mask_storeu_ps(Y + r * nD, m0, acc[r][0]);
      _mm512_mask_storeu_ps(Y + r * nD + 16, m1, acc[r][1]);
    } else {
      _mm512_storeu_ps(Y + r * nD, acc[r][0]);
      _mm512_storeu_ps(Y + r * nD + 16, acc[r][1]);
    }
  }
}

// All rows of Y (groups of 8, then the rest), each group over all 32-column chunks.
template <bool AT>
void rank_update(int64_t rows, int64_t L, const float* a, int64_t lda, const float* S, float* Y, int64_t nD) {
  for (int64_t r0 = 0; r0 < rows; r0 += 8) {
    const float* ag = a + (AT ? r0 : r0 * lda);
    float* Yg = Y + r0 * nD;
    with_count(std::min<int64_t>(8, rows - r0), [&](auto count) {
      constexpr int R = decltype(count)::value;
      int64_t c = 0;
      for (; c + 32 <= nD; c += 32) rank_tile<R, false, AT>(L, ag, lda, S + c, Yg + c, nD, 0, 0);
      if (c < nD) rank_tile<R, true, AT>(L, ag, lda, S + c, Yg + c, nD, lanes(nD - c), lanes(nD - c - 16));
    });
  }
}

}  // namespace

void skinny_dphi_add(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* X, float* dphi) {
  rank_update<true>(K, M, Gr, K, X, dphi, nD);  // row o of dφ, step i: Gr[i, o]
}

void skinny_project(int64_t M, const float* X, const PackedPhi& p, float* raw) {
  if (p.Kp == 16)
    project_rows<1>(M, X, p, raw);
  else
    project_rows<2>(M, X, p, raw);
}

void skinny_expand_add(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* phi, float* dX) {
  rank_update<false>(M, K, Gr, K, phi, dX, nD);  // row i of dX, step o: Gr[i, o]
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

// GEMV row kernels shared by linear_rows (linear_rows.cpp) and the fused
// Mamba-2 block step (mamba/mamba_step.cpp). Internal header of the fast-math
// kernel folders.
#pragma once
#include <ATen/Parallel.h>

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace dynarch::fused {

// Weight element as the compute type: bf16 weights are stored as raw bits.
template <class C, class WT>
inline C wval(WT w) {
  if constexpr (std::is_same_v<WT, uint16_t>) {
    const uint32_t bits = (uint32_t)w << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  } else {
    return (C)w;
  }
}

inline float hsum8(__m256 a) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// w . x over n floats with four 8-wide accumulators.
template <bool nta>
inline float dot_f32(const float* w, const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    if (nta) {
      _mm_prefetch(reinterpret_cast<const char*>(w + i + 512), _MM_HINT_NTA);
      _mm_prefetch(reinterpret_cast<const char*>(w + i + 528), _MM_HINT_NTA);
    }
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
  float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

// fp32, one or two rows of x (batch-1 decode): one weight row at a time, so each
// thread reads its share of W front to back as one stream. Against the 4-row
// kernel below (four interleaved 1 KB row streams) H-Net decode was 1-22 %
// faster in interleaved A/B runs (docs/benchmarks.md). With `nta` the
// weights 2 KB ahead are prefetched non-temporally (StreamWeightsScope).
template <bool nta>
void gemv_rows_f32(const float* x, int64_t M, int64_t in, const float* W, const float* bias, int64_t out, float* y) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(in, 1));
  at::parallel_for(0, out, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t m = 0; m < M; ++m)
        y[m * out + r] = dot_f32<nta>(W + r * in, x + m * in, in) + (bias ? bias[r] : 0.f);
  });
}

}  // namespace dynarch::fused

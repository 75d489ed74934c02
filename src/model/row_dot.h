// Dot product of two contiguous rows for the stream-mixing kernels (hc_ops.cpp,
// mhc_fused.cpp). A single vector accumulator makes the loop wait on the FMA
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

}  // namespace dynarch

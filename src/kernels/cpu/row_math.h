// Inline helpers shared by the fused kernel files (kernels/cpu/mamba, kernels/cpu/dense:
// folders compiled with -ffast-math so that GCC vectorises expf through glibc's
// libmvec; inputs to exp are clamped so no inf/NaN arises). Internal header:
// include it only from those files.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

namespace dynarch::fused {

constexpr int64_t kBlk = 256;

template <class C>
inline C sigmoid(C x) {
  x = std::min(std::max(x, C(-80)), C(80));
  return C(1) / (C(1) + std::exp(-x));
}

// Block conversion to/from the compute type (bf16 <-> fp32 is a 16-bit shift).
template <class T, class C>
inline void load(const T* src, C* dst, int64_t n) {
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits = (uint32_t)s[i] << 16;
      std::memcpy(&dst[i], &bits, 4);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = (C)src[i];
  }
}
template <class C, class T>
inline void store(const C* src, T* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = (T)src[i];  // bf16: round to nearest even
}

// Dispatch over the element types we support; C = compute type.
template <class F>
void dispatch(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kFloat: f(float{}, float{}); break;
    case at::kBFloat16: f(c10::BFloat16{}, float{}); break;
    case at::kDouble: f(double{}, double{}); break;
    default: TORCH_CHECK(false, "fused op: unsupported dtype ", t);
  }
}

// RMS norm of one row: o = x / rms(x) * w (sum of squares in C); returns 1/rms.
template <class T, class C>
inline C rms_norm_row(const T* __restrict x, const C* __restrict w, C* __restrict o, int64_t d, C eps) {
  C ss = 0;
  for (int64_t i = 0; i < d; ++i) ss += (C)x[i] * (C)x[i];
  const C inv = C(1) / std::sqrt(ss / d + eps);
  for (int64_t i = 0; i < d; ++i) o[i] = (C)x[i] * inv * w[i];
  return inv;
}

// Mamba-2 gated norm of one row: o = rms_norm(y * silu(z)) * w; returns 1/rms.
// z is read through `load` (fp32/bf16/fp64), `zb` is scratch of d compute values.
template <class T, class C>
inline C gated_norm_row(const C* __restrict y, const T* __restrict z, const C* __restrict w, C* __restrict o,
                        C* __restrict zb, int64_t d, C eps) {
  load(z, zb, d);
  C ss = 0;
  for (int64_t i = 0; i < d; ++i) {
    C g = y[i] * zb[i] * sigmoid(zb[i]);
    o[i] = g;
    ss += g * g;
  }
  C inv = C(1) / std::sqrt(ss / d + eps);
  for (int64_t i = 0; i < d; ++i) o[i] = o[i] * inv * w[i];
  return inv;
}

// Backward of gated_norm_row given the output gradient go and the saved 1/rms:
// writes gy, gz (compute type) and adds to the weight-gradient row acc.
// zb and g are scratch of d values. Pointers must not alias (__restrict: GCC
// gives up vectorising the second loop for the number of runtime alias checks).
template <class T, class C>
inline void gated_norm_row_backward(const C* __restrict y, const T* __restrict z, const C* __restrict w,
                                    const C* __restrict go, C inv, C* __restrict gy, C* __restrict gz,
                                    C* __restrict acc, C* __restrict zb, C* __restrict g, int64_t d) {
  load(z, zb, d);
  C dot = 0;
  for (int64_t i = 0; i < d; ++i) {
    g[i] = y[i] * zb[i] * sigmoid(zb[i]);
    dot += go[i] * w[i] * g[i];
    acc[i] += go[i] * g[i] * inv;
  }
  const C k = dot * inv * inv * inv / d;
  for (int64_t i = 0; i < d; ++i) {
    const C dg = go[i] * w[i] * inv - g[i] * k;  // through the norm
    const C zi = zb[i], sg = sigmoid(zi);
    gy[i] = dg * zi * sg;
    gz[i] = dg * y[i] * sg * (C(1) + zi * (C(1) - sg));
  }
}

// The tensor's data in dtype C if it already is C and contiguous (no copy, no
// dispatcher call), else a converted copy kept alive in `hold`.
template <class C>
inline const C* as(const at::Tensor& t, at::Tensor& hold) {
  if (t.scalar_type() == c10::CppTypeToScalarType<C>::value && t.is_contiguous()) return t.data_ptr<C>();
  hold = t.to(c10::CppTypeToScalarType<C>::value).contiguous();
  return hold.data_ptr<C>();
}

}  // namespace dynarch::fused

#include "kernels/cpu/dense/attention_step.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "kernels/cpu/row_math.h"

namespace dynarch {

using fused::as;

namespace {

template <class C>
void attention_kernel(const C* qkv, const C* K, const C* V, int64_t B, int64_t H, int64_t hd, int64_t cap,
                      const std::vector<int64_t>& pos, int64_t window, C* y) {
  using F = std::conditional_t<std::is_same_v<C, double>, double, float>;  // softmax in fp32 or better
  const F scale = F(1) / std::sqrt((F)hd);
  int64_t keys = 0;
  for (auto p : pos) keys = std::max(keys, p + 1);
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(keys * hd, 1));
  at::parallel_for(0, B * H, grain, [&](int64_t i0, int64_t i1) {
    std::vector<F> s(keys);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      const int64_t hi = pos[b], lo = window >= 0 ? std::max<int64_t>(0, hi - window) : 0;
      const C* q = qkv + (b * 3 * H + h) * hd;
      const C* Kh = K + (b * H + h) * cap * hd;
      const C* Vh = V + (b * H + h) * cap * hd;
      F mx = -std::numeric_limits<F>::infinity();
      for (int64_t j = lo; j <= hi; ++j) {
        C dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += q[d] * Kh[j * hd + d];
        s[j] = (F)dot * scale;
        mx = std::max(mx, s[j]);
      }
      F Z = 0;
      for (int64_t j = lo; j <= hi; ++j) {
        s[j] = std::exp(s[j] - mx);
        Z += s[j];
      }
      C* o = y + (b * H + h) * hd;
      std::fill(o, o + hd, C(0));
      for (int64_t j = lo; j <= hi; ++j) {
        const C pj = (C)(s[j] / Z);
        for (int64_t d = 0; d < hd; ++d) o[d] += pj * Vh[j * hd + d];
      }
    }
  });
}

}  // namespace

at::Tensor attention_step_core(const at::Tensor& qkv, const at::Tensor& K, const at::Tensor& V,
                               const std::vector<int64_t>& pos, int64_t window) {
  const auto T = K.scalar_type();
  TORCH_CHECK((T == at::kFloat || T == at::kDouble) && V.scalar_type() == T && K.is_contiguous() && V.is_contiguous(),
              "attention_step_core: contiguous fp32/fp64 caches expected");
  const int64_t B = qkv.size(0), H = qkv.size(2), hd = qkv.size(3);
  auto y = at::empty({B, H * hd}, K.options());
  AT_DISPATCH_FLOATING_TYPES(T, "attention_step_core", [&] {
    at::Tensor hold;
    attention_kernel<scalar_t>(as<scalar_t>(qkv, hold), K.data_ptr<scalar_t>(), V.data_ptr<scalar_t>(), B, H, hd,
                               K.size(2), pos, window, y.data_ptr<scalar_t>());
  });
  return y;
}

}  // namespace dynarch

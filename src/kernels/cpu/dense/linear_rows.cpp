#include "kernels/cpu/dense/linear_rows.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <immintrin.h>

#include <mutex>
#include <unordered_map>

#include "core/compat.h"
#include "core/forward_context.h"
#include "kernels/cpu/dense/gemv_rows.h"
#include "kernels/cpu/row_math.h"

namespace dynarch {

using fused::gemv_rows_f32;
using fused::wval;

namespace {

// y (M, out) = x (M, in) W^T + bias, four weight rows at a time: each weight
// is read from memory once and reused from L1 for the M rows of x. With
// `stream`, the next block's weights are prefetched non-temporally.
template <class C, class WT>
void gemv_kernel(const C* x, int64_t M, int64_t in, const WT* W, const C* bias, int64_t out, C* y, bool stream) {
  constexpr int64_t R = 4;
  const int64_t nblk = (out + R - 1) / R;
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(in, 1));  // >= 32 K weights per task
  constexpr int64_t kLine = 64 / sizeof(WT);
  at::parallel_for(0, nblk, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * R;
      if (stream && blk + 1 < b1) {
        const WT* next = W + (r0 + R) * in;
        const int64_t n = std::min(R, out - r0 - R) * in;
        for (int64_t i = 0; i < n; i += kLine) _mm_prefetch(reinterpret_cast<const char*>(next + i), _MM_HINT_NTA);
      }
      if (r0 + R <= out) {
        const WT *w0 = W + r0 * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
        for (int64_t m = 0; m < M; ++m) {
          const C* xm = x + m * in;
          C a0 = 0, a1 = 0, a2 = 0, a3 = 0;
          for (int64_t i = 0; i < in; ++i) {
            const C xi = xm[i];
            a0 += wval<C>(w0[i]) * xi;
            a1 += wval<C>(w1[i]) * xi;
            a2 += wval<C>(w2[i]) * xi;
            a3 += wval<C>(w3[i]) * xi;
          }
          C* ym = y + m * out + r0;
          ym[0] = a0 + (bias ? bias[r0] : C(0));
          ym[1] = a1 + (bias ? bias[r0 + 1] : C(0));
          ym[2] = a2 + (bias ? bias[r0 + 2] : C(0));
          ym[3] = a3 + (bias ? bias[r0 + 3] : C(0));
        }
      } else {
        for (int64_t r = r0; r < out; ++r)
          for (int64_t m = 0; m < M; ++m) {
            C a = 0;
            for (int64_t i = 0; i < in; ++i) a += wval<C>(W[r * in + i]) * x[m * in + i];
            y[m * out + r] = a + (bias ? bias[r] : C(0));
          }
      }
    }
  });
}

// bf16 copies of fp32 weights, made on first use and remade when the weight
// changes (version counter) or is freed (weak reference).
struct Bf16Copy {
  c10::weak_intrusive_ptr<c10::TensorImpl> src;
  uint32_t version;
  at::Tensor copy;
};
std::mutex bf16_mutex;
std::unordered_map<const c10::TensorImpl*, Bf16Copy> bf16_cache;

at::Tensor bf16_copy(const at::Tensor& W) {
  std::lock_guard<std::mutex> lock(bf16_mutex);
  const uint32_t version = W.unsafeGetTensorImpl()->version_counter().current_version();
  auto it = bf16_cache.find(W.unsafeGetTensorImpl());
  if (it != bf16_cache.end() && !it->second.src.expired() && it->second.version == version) return it->second.copy;
  for (auto i = bf16_cache.begin(); i != bf16_cache.end();)  // drop copies of freed weights
    i = i->second.src.expired() ? bf16_cache.erase(i) : std::next(i);
  auto copy = W.to(at::kBFloat16).contiguous();
  bf16_cache.erase(W.unsafeGetTensorImpl());
  bf16_cache.emplace(W.unsafeGetTensorImpl(),
                     Bf16Copy{c10::weak_intrusive_ptr<c10::TensorImpl>(W.getIntrusivePtr()), version, copy});
  return copy;
}

}  // namespace

at::Tensor linear_rows(const at::Tensor& x, const at::Tensor& W, const at::Tensor& bias) {
  const auto& v = forward_context().variants;
  const bool stream_weights = v.stream_weights, bf16_weights = v.bf16_weights, block_gemv = v.block_gemv;
  const auto t = x.scalar_type();
  const int64_t in = W.size(1), out = W.size(0);
  const int64_t M = x.numel() / std::max<int64_t>(in, 1);
  if ((t != at::kFloat && t != at::kDouble) || W.scalar_type() != t || (bias.defined() && bias.scalar_type() != t) ||
      M > kGemvMaxRows || x.size(-1) != in || at::GradMode::is_enabled() || compat::cpu_autocast_enabled() ||
      !ForwardContext::cpu_kernels_apply(x))
    return at::linear(x, W, bias);
  auto xc = x.contiguous(), Wc = W.contiguous();
  auto sizes = x.sizes().vec();
  sizes.back() = out;
  auto y = at::empty(sizes, x.options());
  at::Tensor bc = bias.defined() ? bias.contiguous() : bias;
  if (bf16_weights && t == at::kFloat) {
    auto W16 = bf16_copy(W);
    gemv_kernel<float, uint16_t>(xc.data_ptr<float>(), M, in, reinterpret_cast<const uint16_t*>(W16.data_ptr()),
                                 bc.defined() ? bc.data_ptr<float>() : nullptr, out, y.data_ptr<float>(),
                                 stream_weights);
    return y;
  }
  if (t == at::kFloat && M <= 2 && !block_gemv) {
    (stream_weights ? gemv_rows_f32<true> : gemv_rows_f32<false>)(
        xc.data_ptr<float>(), M, in, Wc.data_ptr<float>(), bc.defined() ? bc.data_ptr<float>() : nullptr, out,
        y.data_ptr<float>());
    return y;
  }
  AT_DISPATCH_FLOATING_TYPES(t, "linear_rows", [&] {
    gemv_kernel<scalar_t, scalar_t>(xc.data_ptr<scalar_t>(), M, in, Wc.data_ptr<scalar_t>(),
                                    bc.defined() ? bc.data_ptr<scalar_t>() : nullptr, out, y.data_ptr<scalar_t>(),
                                    stream_weights);
  });
  return y;
}

}  // namespace dynarch

#include "model/fused_decode.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <immintrin.h>

#include <mutex>
#include <unordered_map>

#include "core/compat.h"
#include "model/fused_kernels.h"

namespace dynarch {

namespace {

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

// The tensor's data in dtype C if it already is C and contiguous (no copy, no
// dispatcher call), else a converted copy kept alive in `hold`.
template <class C>
const C* as(const at::Tensor& t, at::Tensor& hold) {
  if (t.scalar_type() == c10::CppTypeToScalarType<C>::value && t.is_contiguous()) return t.data_ptr<C>();
  hold = t.to(c10::CppTypeToScalarType<C>::value).contiguous();
  return hold.data_ptr<C>();
}

// Three phases so that batch 1 uses every thread where the work is: the causal
// conv (per row, cheap), the SSM update (per row and head: H P N states, the
// bulk), the gated norm (per row, needs all heads).
template <class C>
void mamba_step_kernel(const C* zx, C* conv, const C* cw, const C* cb, const C* dt_bias, const C* A_log, const C* Dp,
                       C* ssm, const C* nw, C* g, int64_t B, int64_t Di, int64_t N, int64_t H, int64_t K, C eps) {
  const int64_t Cd = Di + 2 * N, P = Di / H, W = 2 * Di + 2 * N + H;
  std::vector<C> xcv(B * Cd), yv(B * Di);
  C *xcs = xcv.data(), *ys = yv.data();
  at::parallel_for(0, B, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const C* xBC = zx + b * W + Di;
      C* cs = conv + b * Cd * K;
      C* xc = xcs + b * Cd;
      for (int64_t c = 0; c < Cd; ++c) {  // shift the window, append this step, convolve
        C* w = cs + c * K;
        C acc = cb[c];
        for (int64_t k = 0; k + 1 < K; ++k) {
          w[k] = w[k + 1];
          acc += w[k] * cw[c * K + k];
        }
        w[K - 1] = xBC[c];
        acc += w[K - 1] * cw[c * K + K - 1];
        xc[c] = acc * fused::sigmoid(acc);
      }
    }
  });
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(P * N, 1));
  at::parallel_for(0, B * H, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      const C* dt = zx + b * W + Di + Cd;
      const C* xc = xcs + b * Cd;
      const C* Bv = xc + Di;
      const C* Cv = Bv + N;
      const C v = dt[h] + dt_bias[h];
      const C delta = v > C(20) ? v : std::log1p(std::exp(v));  // softplus (torch's threshold)
      const C dA = std::exp(-delta * std::exp(A_log[h]));
      for (int64_t p = 0; p < P; ++p) {
        const C x = xc[h * P + p], u = delta * x;
        C* S = ssm + ((b * H + h) * P + p) * N;
        C out = 0;
        for (int64_t n = 0; n < N; ++n) {
          S[n] = dA * S[n] + u * Bv[n];
          out += S[n] * Cv[n];
        }
        ys[b * Di + h * P + p] = out + Dp[h] * x;
      }
    }
  });
  at::parallel_for(0, B, 4, [&](int64_t b0, int64_t b1) {
    std::vector<C> zb(Di);
    for (int64_t b = b0; b < b1; ++b)
      fused::gated_norm_row(ys + b * Di, zx + b * W, nw, g + b * Di, zb.data(), Di, eps);
  });
}

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

thread_local bool decode_option[kNumDecodeOptions] = {};  // DecodeOptionScope flags of this thread

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

template <DecodeOption Option>
DecodeOptionScope<Option>::DecodeOptionScope() : prev(decode_option[Option]) {
  decode_option[Option] = true;
}
template <DecodeOption Option>
DecodeOptionScope<Option>::~DecodeOptionScope() {
  decode_option[Option] = prev;
}
template struct DecodeOptionScope<kStreamWeights>;
template struct DecodeOptionScope<kBf16Weights>;
template struct DecodeOptionScope<kBlockGemv>;
template struct DecodeOptionScope<kUnfusedStep>;

at::Tensor linear_rows(const at::Tensor& x, const at::Tensor& W, const at::Tensor& bias) {
  const bool stream_weights = decode_option[kStreamWeights], bf16_weights = decode_option[kBf16Weights],
             block_gemv = decode_option[kBlockGemv];
  const auto t = x.scalar_type();
  const int64_t in = W.size(1), out = W.size(0);
  const int64_t M = x.numel() / std::max<int64_t>(in, 1);
  if ((t != at::kFloat && t != at::kDouble) || W.scalar_type() != t || (bias.defined() && bias.scalar_type() != t) ||
      M > kGemvMaxRows || x.size(-1) != in || at::GradMode::is_enabled() || compat::cpu_autocast_enabled())
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

at::Tensor mamba_step_core(const at::Tensor& zx_in, at::Tensor& conv, at::Tensor& ssm, const at::Tensor& conv_w,
                           const at::Tensor& conv_b, const at::Tensor& dt_bias, const at::Tensor& A_log,
                           const at::Tensor& D, const at::Tensor& norm_w, int64_t d_inner, int64_t d_state,
                           double eps) {
  const auto T = ssm.scalar_type();
  TORCH_CHECK(T == at::kFloat || T == at::kDouble, "mamba_step_core: ssm cache must be fp32 or fp64");
  if (conv.scalar_type() != T || !conv.is_contiguous()) conv = conv.to(T).contiguous();
  TORCH_CHECK(ssm.is_contiguous(), "mamba_step_core: ssm cache must be contiguous");
  const int64_t B = zx_in.size(0), H = dt_bias.size(0), K = conv.size(2);
  auto g = at::empty({B, d_inner}, ssm.options());
  AT_DISPATCH_FLOATING_TYPES(T, "mamba_step_core", [&] {
    using C = scalar_t;
    at::Tensor h[7];
    mamba_step_kernel<C>(as<C>(zx_in, h[0]), conv.data_ptr<C>(), as<C>(conv_w, h[1]), as<C>(conv_b, h[2]),
                         as<C>(dt_bias, h[3]), as<C>(A_log, h[4]), as<C>(D, h[5]), ssm.data_ptr<C>(),
                         as<C>(norm_w, h[6]), g.data_ptr<C>(), B, d_inner, d_state, H, K, (C)eps);
  });
  return g;
}

at::Tensor mamba_block_step(const at::Tensor& r, const MambaBlockWeights& w, at::Tensor& conv, at::Tensor& ssm) {
  auto fp32 = [](const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.is_contiguous(); };
  if (decode_option[kBf16Weights] || decode_option[kBlockGemv] || decode_option[kUnfusedStep] ||
      at::GradMode::is_enabled() || compat::cpu_autocast_enabled() || r.dim() != 2 || r.size(0) > 2 ||
      r.size(1) != w.in_w.size(1))
    return {};
  const std::initializer_list<const at::Tensor*> tensors = {
      &r, &w.norm_w, &w.in_w, &w.out_w, &w.conv_w, &w.conv_b, &w.dt_bias, &w.A_log, &w.D, &w.gnorm_w, &conv, &ssm};
  for (const at::Tensor* t : tensors)
    if (!fp32(*t)) return {};
  const int64_t B = r.size(0), Dm = r.size(1), Di = w.d_inner, N = w.d_state, H = w.dt_bias.size(0);
  const int64_t W = w.in_w.size(0), K = conv.size(2);
  thread_local std::vector<float> xn, zx, g, y;  // reused across steps: no allocation per byte
  xn.resize(B * Dm), zx.resize(B * W), g.resize(B * Di), y.resize(B * Dm);
  const float *pr = r.data_ptr<float>(), *nw = w.norm_w.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) fused::rms_norm_row(pr + b * Dm, nw, xn.data() + b * Dm, Dm, (float)w.norm_eps);
  auto gemv = decode_option[kStreamWeights] ? gemv_rows_f32<true> : gemv_rows_f32<false>;
  gemv(xn.data(), B, Dm, w.in_w.data_ptr<float>(), nullptr, W, zx.data());
  mamba_step_kernel<float>(zx.data(), conv.data_ptr<float>(), w.conv_w.data_ptr<float>(), w.conv_b.data_ptr<float>(),
                           w.dt_bias.data_ptr<float>(), w.A_log.data_ptr<float>(), w.D.data_ptr<float>(),
                           ssm.data_ptr<float>(), w.gnorm_w.data_ptr<float>(), g.data(), B, Di, N, H, K,
                           (float)kGatedNormEps);
  gemv(g.data(), B, Di, w.out_w.data_ptr<float>(), nullptr, Dm, y.data());
  auto out = at::empty({B, Dm}, r.options());
  float* po = out.data_ptr<float>();
  for (int64_t i = 0; i < B * Dm; ++i) po[i] = pr[i] + y[i];
  return out;
}

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

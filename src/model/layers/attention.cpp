#include "model/layers/attention.h"

#include <torch/torch.h>

#include <cstring>
#include <map>
#include <string>
#include <tuple>

#include "core/compat.h"
#include "core/device.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "kernels/cpu/dense/attention_step.h"
#include "kernels/cpu/dense/linear_rows.h"

namespace dynarch {

namespace {
// theta_i = base^(-2i/r), computed once per (r, base).
const at::Tensor& rotary_inv_freq(int64_t r, double base) {
  thread_local std::map<std::pair<int64_t, double>, at::Tensor> cache;
  auto& t = cache[{r, base}];
  if (!t.defined())
    t = at::pow(base, -at::arange(0, r / 2, at::TensorOptions().dtype(at::kDouble)) * 2.0 / (double)r);
  return t;
}
}  // namespace

namespace {
// cos and sin of the angles of positions [0, n) (n >= bound), (n, half) in x's
// dtype on x's device. The angles are computed on the CPU in fp64 (accurate at
// large positions, the same everywhere) and cast once; the table grows by
// doubling. Cached per thread, (r, base, device, dtype): a forward on a GPU then
// copies nothing from the host (a blocking copy per layer would drain the queue).
std::pair<at::Tensor, at::Tensor> rotary_table(int64_t r, double base, const at::TensorOptions& opts, int64_t bound) {
  using Key = std::tuple<int64_t, double, std::string, at::ScalarType>;
  thread_local std::map<Key, std::pair<at::Tensor, at::Tensor>> cache;
  auto& t = cache[Key{r, base, opts.device().str(), at::typeMetaToScalarType(opts.dtype())}];
  if (!t.first.defined() || t.first.size(0) < bound) {
    int64_t n = 256;
    while (n < bound) n *= 2;
    auto ang = at::arange(n, at::TensorOptions().dtype(at::kDouble)).unsqueeze(-1) *
               rotary_inv_freq(r, base).unsqueeze(0);
    t = {ang.cos().to(opts), ang.sin().to(opts)};
  }
  return t;
}
}  // namespace

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& positions, int64_t r, double base, int64_t bound) {
  if (r == 0) return x;
  const int64_t half = r / 2;
  if (bound < 0) {
    check(positions.is_cpu(), "apply_rotary: positions off the CPU need a bound");
    bound = positions.numel() ? positions.max().item<int64_t>() + 1 : 0;
  }
  auto [ct, st] = rotary_table(r, base, x.options(), bound);
  auto idx = positions.to(x.device(), at::kLong);
  // Broadcast over heads: x (..., N, H, hd) -> cos (N, 1, half).
  auto cos = ct.index_select(0, idx).unsqueeze(-2), sin = st.index_select(0, idx).unsqueeze(-2);
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rot = at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
  if (r == x.size(-1)) return rot;
  return at::cat({rot, x.narrow(-1, r, x.size(-1) - r)}, -1);
}

void rotary_step_inplace(at::Tensor& qkv, const std::vector<int64_t>& pos, int64_t r, double base) {
  if (r == 0) return;
  if (!forward_context().fast_kernels(qkv)) {  // tensor ops (off the CPU, reference mode): row b at pos[b]
    const auto p = index_tensor(pos, qkv.device());
    const int64_t bound = *std::max_element(pos.begin(), pos.end()) + 1;
    for (int64_t part = 0; part < 2; ++part)
      qkv.select(1, part).copy_(apply_rotary(qkv.select(1, part), p, r, base, bound));
    return;
  }
  const int64_t B = qkv.size(0), H = qkv.size(2), hd = qkv.size(3), half = r / 2;
  std::vector<double> inv(half);
  for (int64_t i = 0; i < half; ++i) inv[i] = std::pow(base, -2.0 * (double)i / (double)r);
  AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "rotary_step", [&] {
    scalar_t* d = qkv.data_ptr<scalar_t>();
    std::vector<scalar_t> c(half), s(half);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < half; ++i) {
        const double a = (double)pos[b] * inv[i];  // fp64 angle, as apply_rotary
        c[i] = (scalar_t)std::cos(a);
        s[i] = (scalar_t)std::sin(a);
      }
      for (int64_t part = 0; part < 2; ++part)  // q, k
        for (int64_t h = 0; h < H; ++h) {
          scalar_t* v = d + ((b * 3 + part) * H + h) * hd;
          for (int64_t i = 0; i < half; ++i) {
            const scalar_t x1 = v[i], x2 = v[i + half];
            v[i] = x1 * c[i] - x2 * s[i];
            v[i + half] = x2 * c[i] + x1 * s[i];
          }
        }
    }
  });
}

at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               int64_t q_pos0, int64_t window) {
  const int64_t Lq = q.size(2), Lk = k.size(2), hd = q.size(3);
  auto scores = at::matmul(q, k.transpose(-1, -2)).to(at::kFloat) * (1.0 / std::sqrt((double)hd));
  const auto li = at::TensorOptions().dtype(at::kLong).device(q.device());
  auto iq = at::arange(q_pos0, q_pos0 + Lq, li).unsqueeze(1);
  auto jk = at::arange(0, Lk, li).unsqueeze(0);
  auto masked = jk > iq;
  if (window >= 0) masked = masked.logical_or(jk < iq - window);
  scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
  auto probs = at::softmax(scores, -1).to(v.scalar_type());
  return at::matmul(probs, v);
}

Attention::Attention(int64_t d, int64_t h, int64_t r, int64_t w)
    : d_model(d), num_heads(h), head_dim(d / h), rotary_dim(r), window(w) {
  Wqkv = register_module("Wqkv", torch::nn::Linear(torch::nn::LinearOptions(d, 3 * d).bias(false)));
  out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
}

LayerCache Attention::new_cache(int64_t batch, at::ScalarType dtype) const {
  LayerCache c;
  auto opts = at::TensorOptions().dtype(dtype).device(Wqkv->weight.device());
  c.k = at::zeros({batch, num_heads, 0, head_dim}, opts);
  c.v = at::zeros({batch, num_heads, 0, head_dim}, opts);
  return c;
}

at::Tensor Attention::forward(const at::Tensor& x, LayerCache* cache, int64_t pos0, const at::Tensor&) {
  // Keys past a row's valid length are cached too; steps mask them by position.
  const int64_t B = x.size(0), L = x.size(1);
  auto qkv = Wqkv->forward(x).view({B, L, 3, num_heads, head_dim});
  auto pos = at::arange(pos0, pos0 + L, x.options().dtype(at::kLong));  // on x's device: no copy
  auto q = apply_rotary(qkv.select(2, 0), pos, rotary_dim, 10000.0, pos0 + L).transpose(1, 2);
  auto k = apply_rotary(qkv.select(2, 1), pos, rotary_dim, 10000.0, pos0 + L).transpose(1, 2);
  auto v = qkv.select(2, 2).transpose(1, 2);
  at::Tensor kk = k, vv = v;
  if (cache && pos0 > 0) {
    kk = at::cat({cache->k.narrow(2, 0, pos0).to(k.scalar_type()), k}, 2);
    vv = at::cat({cache->v.narrow(2, 0, pos0).to(v.scalar_type()), v}, 2);
  }
  at::Tensor y;
  if (pos0 == 0 && window < 0)
    y = compat::sdpa_causal(q, k, v);
  else
    y = attention_reference(q, kk, vv, pos0, window);
  if (cache) {
    cache->k = kk.detach().contiguous();
    cache->v = vv.detach().contiguous();
  }
  return out_proj->forward(y.transpose(1, 2).reshape({B, L, d_model}));
}

at::Tensor Attention::forward_packed(const at::Tensor& x, const PackedSeqs& seqs) {
  const int64_t T = x.size(1);
  auto qkv = Wqkv->forward(x).view({1, T, 3, num_heads, head_dim});
  // Position within its sequence, on x's device (the packing's starts are there already).
  auto pos = at::arange(T, x.options().dtype(at::kLong)) - seqs.starts_on(x.device());
  auto q = apply_rotary(qkv.select(2, 0), pos, rotary_dim, 10000.0, seqs.max_len).transpose(1, 2);
  auto k = apply_rotary(qkv.select(2, 1), pos, rotary_dim, 10000.0, seqs.max_len).transpose(1, 2);
  auto v = qkv.select(2, 2).transpose(1, 2);
  // One attention call per sequence: the causal mask of each is its own (a
  // block-diagonal mask over T would cost T^2 instead of the sum of L^2).
  std::vector<at::Tensor> ys;
  ys.reserve(seqs.count());
  for (int64_t i = 0; i < seqs.count(); ++i) {
    const int64_t s0 = seqs.offsets[i], n = seqs.length(i);
    auto qi = q.narrow(2, s0, n), ki = k.narrow(2, s0, n), vi = v.narrow(2, s0, n);
    ys.push_back(window < 0 ? compat::sdpa_causal(qi, ki, vi) : attention_reference(qi, ki, vi, 0, window));
  }
  auto y = ys.size() == 1 ? ys[0] : at::cat(ys, 2);
  return out_proj->forward(y.transpose(1, 2).reshape({1, T, d_model}));
}

int64_t Attention::write_kv(const at::Tensor& qkv, LayerCache& cache, const std::vector<int64_t>& pos) const {
  const int64_t B = qkv.size(0);
  auto k = qkv.select(1, 1), v = qkv.select(1, 2);
  int64_t maxpos = *std::max_element(pos.begin(), pos.end());
  if (cache.k.size(2) <= maxpos) {  // grow geometrically
    int64_t cap = std::max<int64_t>(maxpos + 1, 2 * cache.k.size(2));
    auto grow = [&](at::Tensor& t) {
      auto n = at::zeros({t.size(0), t.size(1), cap, t.size(3)}, t.options().dtype(k.scalar_type()));
      n.narrow(2, 0, t.size(2)).copy_(t);
      t = n;
    };
    grow(cache.k);
    grow(cache.v);
  }
  const bool same = std::all_of(pos.begin(), pos.end(), [&](int64_t x) { return x == pos[0]; });
  if (cache.k.scalar_type() == qkv.scalar_type() && cache.k.is_contiguous() && cache.v.is_contiguous() &&
      qkv.is_contiguous() && forward_context().fast_kernels(qkv)) {  // decode: plain copies, no dispatcher calls
    const int64_t H = qkv.size(2), hd = qkv.size(3), cap = cache.k.size(2);
    const int64_t bytes = hd * qkv.element_size();
    const char* src = static_cast<const char*>(qkv.data_ptr());
    char* dk = static_cast<char*>(cache.k.data_ptr());
    char* dv = static_cast<char*>(cache.v.data_ptr());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t at = ((b * H + h) * cap + pos[b]) * bytes;
        std::memcpy(dk + at, src + ((b * 3 + 1) * H + h) * bytes, bytes);
        std::memcpy(dv + at, src + ((b * 3 + 2) * H + h) * bytes, bytes);
      }
  } else if (same) {  // one copy
    cache.k.narrow(2, maxpos, 1).copy_(k.unsqueeze(2));
    cache.v.narrow(2, maxpos, 1).copy_(v.unsqueeze(2));
  } else {  // row b at its own position: one indexed write (not 2B small copies)
    using torch::indexing::Slice;
    const auto rows = at::arange(B, qkv.options().dtype(at::kLong)), where = index_tensor(pos, qkv.device());
    cache.k.index_put_({rows, Slice(), where}, k.to(cache.k.scalar_type()));
    cache.v.index_put_({rows, Slice(), where}, v.to(cache.v.scalar_type()));
  }
  return maxpos;
}

at::Tensor Attention::step(const at::Tensor& x, LayerCache& cache, const std::vector<int64_t>& pos) {
  if (!forward_context().fast_kernels(x)) return step_reference(x, cache, pos);
  const int64_t B = x.size(0);
  auto ct = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto qkv = linear_rows(x, Wqkv->weight).to(ct).contiguous().view({B, 3, num_heads, head_dim});
  rotary_step_inplace(qkv, pos, rotary_dim);  // q and k of every row at its own position
  write_kv(qkv, cache, pos);
  if (cache.k.scalar_type() != ct || !cache.k.is_contiguous()) {
    cache.k = cache.k.to(ct).contiguous();
    cache.v = cache.v.to(ct).contiguous();
  }
  return linear_rows(attention_step_core(qkv, cache.k, cache.v, pos, window), out_proj->weight);
}

at::Tensor Attention::step_reference(const at::Tensor& x, LayerCache& cache, const std::vector<int64_t>& pos) {
  const int64_t B = x.size(0);
  auto ct = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto qkv = Wqkv->forward(x).to(ct).contiguous().view({B, 3, num_heads, head_dim});
  rotary_step_inplace(qkv, pos, rotary_dim);
  const int64_t maxpos = write_kv(qkv, cache, pos);
  const bool same = std::all_of(pos.begin(), pos.end(), [&](int64_t x) { return x == pos[0]; });
  auto q = qkv.select(1, 0);
  // Only keys a query may see: the window (if any) bounds the slice for equal positions.
  const int64_t lo = (same && window >= 0) ? std::max<int64_t>(0, maxpos - window) : 0;
  const int64_t Lk = maxpos + 1 - lo;
  auto kk = cache.k.narrow(2, lo, Lk), vv = cache.v.narrow(2, lo, Lk);
  auto scores = at::matmul(q.unsqueeze(2), kk.transpose(-1, -2)).to(at::kFloat) *
                (1.0 / std::sqrt((double)head_dim));  // (B, H, 1, Lk)
  if (!same) {
    auto j = at::arange(Lk, at::TensorOptions().dtype(at::kLong).device(scores.device())).unsqueeze(0);
    auto pp = index_tensor(pos, scores.device()).unsqueeze(1);
    auto masked = j > pp;
    if (window >= 0) masked = masked.logical_or(j < pp - window);
    scores = scores.masked_fill(masked.view({B, 1, 1, Lk}), -std::numeric_limits<float>::infinity());
  }
  auto y = at::matmul(at::softmax(scores, -1).to(vv.scalar_type()), vv);  // (B, H, 1, hd)
  return out_proj->forward(y.reshape({B, d_model}));
}

}  // namespace dynarch

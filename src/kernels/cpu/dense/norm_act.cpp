#include "kernels/cpu/dense/norm_act.h"

#include "core/forward_context.h"
#include "kernels/cpu/row_math.h"

#include <ATen/record_function.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstring>
#include <type_traits>

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

namespace {

using fused::dispatch;
using fused::kBlk;
using fused::load;
using fused::sigmoid;
using fused::store;

struct SwiGLUFn : torch::autograd::Function<SwiGLUFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h_in) {
    auto h = h_in.contiguous();
    const int64_t d = h.size(-1) / 2, rows = h.numel() / (2 * d);
    auto sizes = h.sizes().vec();
    sizes.back() = d;
    auto out = at::empty(sizes, h.options());
    dispatch(h.scalar_type(), [&](auto T0, auto C0) {
      using T = decltype(T0);
      using C = decltype(C0);
      const T* ph = h.data_ptr<T>();
      T* po = out.data_ptr<T>();
      at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const T* v = ph + r * 2 * d;
          const T* g = v + d;
          T* o = po + r * d;
          C vb[kBlk], gb[kBlk];
          for (int64_t i0 = 0; i0 < d; i0 += kBlk) {
            const int64_t n = std::min<int64_t>(kBlk, d - i0);
            load(v + i0, vb, n);
            load(g + i0, gb, n);
            for (int64_t i = 0; i < n; ++i) vb[i] = vb[i] * gb[i] * sigmoid(gb[i]);
            store(vb, o + i0, n);
          }
        }
      });
    });
    if (ctx) ctx->save_for_backward({h});
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto h = ctx->get_saved_variables()[0];
    auto go = grads[0].to(h.scalar_type()).contiguous();
    const int64_t d = h.size(-1) / 2, rows = h.numel() / (2 * d);
    auto gh = at::empty_like(h);
    dispatch(h.scalar_type(), [&](auto T0, auto C0) {
      using T = decltype(T0);
      using C = decltype(C0);
      const T* ph = h.data_ptr<T>();
      const T* pg = go.data_ptr<T>();
      T* pd = gh.data_ptr<T>();
      at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const T* v = ph + r * 2 * d;
          const T* g = v + d;
          const T* dy = pg + r * d;
          T* dv = pd + r * 2 * d;
          T* dg = dv + d;
          C vb[kBlk], gb[kBlk], yb[kBlk];
          for (int64_t i0 = 0; i0 < d; i0 += kBlk) {
            const int64_t n = std::min<int64_t>(kBlk, d - i0);
            load(v + i0, vb, n);
            load(g + i0, gb, n);
            load(dy + i0, yb, n);
            for (int64_t i = 0; i < n; ++i) {
              C gi = gb[i], s = sigmoid(gi), dyi = yb[i];
              C dvi = dyi * gi * s;
              gb[i] = dyi * vb[i] * s * (C(1) + gi * (C(1) - s));
              vb[i] = dvi;
            }
            store(vb, dv + i0, n);
            store(gb, dg + i0, n);
          }
        }
      });
    });
    return {gh};
  }
};

struct RMSNormFn : torch::autograd::Function<RMSNormFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& w_in, double eps) {
    auto x = x_in.contiguous();
    const bool dbl = x.scalar_type() == at::kDouble;
    auto ct = dbl ? at::kDouble : at::kFloat;
    // (no dispatcher calls or saved statistics beyond what is needed: decode
    // steps call this ~20 times per byte)
    auto w = w_in.scalar_type() == ct && w_in.is_contiguous() ? w_in : w_in.to(ct).contiguous();
    const int64_t d = x.size(-1), rows = x.numel() / d;
    auto out = at::empty(x.sizes(), x.options().dtype(ct));
    auto rstd = ctx ? at::empty({rows}, x.options().dtype(ct)) : at::Tensor();
    dispatch(x.scalar_type(), [&](auto T0, auto C0) {
      using T = decltype(T0);
      using C = decltype(C0);
      const T* px = x.data_ptr<T>();
      const C* pw = w.data_ptr<C>();
      C* po = out.data_ptr<C>();
      C* pr = ctx ? rstd.data_ptr<C>() : nullptr;
      at::parallel_for(0, rows, 8, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const C inv = fused::rms_norm_row(px + r * d, pw, po + r * d, d, (C)eps);
          if (pr) pr[r] = inv;
        }
      });
    });
    if (ctx) ctx->save_for_backward({x, w, rstd});
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], w = saved[1], rstd = saved[2];
    auto ct = w.scalar_type();
    auto gy = grads[0].to(ct).contiguous();
    const int64_t d = x.size(-1), rows = x.numel() / d;
    auto gx = at::empty(x.sizes(), x.options().dtype(ct));
    const int nt = at::get_num_threads();
    auto gw_part = at::zeros({nt, d}, w.options());
    dispatch(x.scalar_type(), [&](auto T0, auto C0) {
      using T = decltype(T0);
      using C = decltype(C0);
      const T* px = x.data_ptr<T>();
      const C* pw = w.data_ptr<C>();
      const C* pg = gy.data_ptr<C>();
      const C* pr = rstd.data_ptr<C>();
      C* pgx = gx.data_ptr<C>();
      C* pgw = gw_part.data_ptr<C>();
      at::parallel_for(0, rows, 8, [&](int64_t r0, int64_t r1) {
        C* acc = pgw + at::get_thread_num() * d;
        for (int64_t r = r0; r < r1; ++r) {
          const T* xr = px + r * d;
          const C* g = pg + r * d;
          const C inv = pr[r];
          C dot = 0;  // sum_i (g_i w_i) x_i
          for (int64_t i = 0; i < d; ++i) {
            C xi = (C)xr[i];
            dot += g[i] * pw[i] * xi;
            acc[i] += g[i] * xi * inv;
          }
          const C k = dot * inv * inv * inv / d;
          C* o = pgx + r * d;
          for (int64_t i = 0; i < d; ++i) o[i] = g[i] * pw[i] * inv - (C)xr[i] * k;
        }
      });
    });
    auto gw = gw_part.sum(0);
    return {gx.to(x.scalar_type()), gw, at::Tensor()};
  }
};

// rms_norm(y * silu(z)) * w (Mamba-2's gated norm, norm_before_gate = false).
// g is recomputed in backward instead of stored.
struct GatedNormFn : torch::autograd::Function<GatedNormFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y_in, const at::Tensor& z_in,
                            const at::Tensor& w_in, double eps) {
    auto ct = y_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    auto y = y_in.to(ct).contiguous(), z = z_in.to(ct).contiguous(), w = w_in.to(ct).contiguous();
    const int64_t d = y.size(-1), rows = y.numel() / d;
    auto out = at::empty_like(y);
    auto rstd = at::empty({rows}, y.options());
    AT_DISPATCH_FLOATING_TYPES(ct, "gated_norm_fwd", [&] {
      using C = scalar_t;
      const C *py = y.data_ptr<C>(), *pz = z.data_ptr<C>(), *pw = w.data_ptr<C>();
      C *po = out.data_ptr<C>(), *pr = rstd.data_ptr<C>();
      at::parallel_for(0, rows, 8, [&](int64_t r0, int64_t r1) {
        std::vector<C> zb(d);
        for (int64_t r = r0; r < r1; ++r)
          pr[r] = fused::gated_norm_row(py + r * d, pz + r * d, pw, po + r * d, zb.data(), d, (C)eps);
      });
    });
    if (ctx) {
      ctx->save_for_backward({y, z, w, rstd});
      ctx->saved_data["z_dtype"] = (int64_t)z_in.scalar_type();
    }
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto s = ctx->get_saved_variables();
    auto y = s[0], z = s[1], w = s[2], rstd = s[3];
    auto gy_out = grads[0].to(y.scalar_type()).contiguous();
    const int64_t d = y.size(-1), rows = y.numel() / d;
    auto gy = at::empty_like(y), gz = at::empty_like(z);
    const int nt = at::get_num_threads();
    auto gw_part = at::zeros({nt, d}, w.options());
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "gated_norm_bwd", [&] {
      using C = scalar_t;
      const C *py = y.data_ptr<C>(), *pz = z.data_ptr<C>(), *pw = w.data_ptr<C>(), *pg = gy_out.data_ptr<C>();
      const C* pr = rstd.data_ptr<C>();
      C *pgy = gy.data_ptr<C>(), *pgz = gz.data_ptr<C>(), *pgw = gw_part.data_ptr<C>();
      at::parallel_for(0, rows, 8, [&](int64_t r0, int64_t r1) {
        C* acc = pgw + at::get_thread_num() * d;
        std::vector<C> zb(d), g(d);
        for (int64_t r = r0; r < r1; ++r)
          fused::gated_norm_row_backward(py + r * d, pz + r * d, pw, pg + r * d, pr[r], pgy + r * d, pgz + r * d, acc,
                                         zb.data(), g.data(), d);
      });
    });
    auto zt = (at::ScalarType)ctx->saved_data["z_dtype"].toInt();
    return {gy, gz.to(zt), gw_part.sum(0), at::Tensor()};
  }
};

}  // namespace

// Without autograd (decode steps) the kernels run without the custom-function
// machinery (a node, a context and saved tensors per call).
at::Tensor gated_rms_norm_fused(const at::Tensor& y, const at::Tensor& z, const at::Tensor& w, double eps) {
  if (!at::GradMode::is_enabled()) return GatedNormFn::forward(nullptr, y, z, w, eps);
  return GatedNormFn::apply(y, z, w, eps);
}

at::Tensor swiglu_fused(const at::Tensor& h) {
  if (!ForwardContext::cpu_kernels_apply(h)) return swiglu_reference(h);
  if (!at::GradMode::is_enabled()) return SwiGLUFn::forward(nullptr, h);
  RECORD_USER_SCOPE("dynarch::swiglu");  // names the forward loops in profiles
  return SwiGLUFn::apply(h);
}

at::Tensor swiglu_reference(const at::Tensor& h) {
  auto vg = h.chunk(2, -1);
  return vg[0] * at::silu(vg[1]);
}

at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& w, double eps) {
  if (!at::GradMode::is_enabled()) return RMSNormFn::forward(nullptr, x, w, eps);
  return RMSNormFn::apply(x, w, eps);
}

}  // namespace dynarch

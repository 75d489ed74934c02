#include "kernels/cpu/mamba/mamba_core.h"

#include <ATen/record_function.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/cpu/row_math.h"
#include "kernels/cpu/mamba/ssd_scan.h"

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

namespace {

// B rows of L positions; row width W = [z (Di) | xBC (Cd = Di + 2N) | dt (H)].
struct Shape {
  int64_t B, L, Di, N, H, P, K, Cd, W, nck;
  const int64_t* start = nullptr;  // packed (B = 1): start of each position's sequence, else null
  int64_t seq_start(int64_t t) const { return start ? start[t] : 0; }
  int64_t xbc() const { return Di; }
  int64_t dtc() const { return Di + Cd; }
  fused::ScanShape scan() const { return {B, L, H, P, N, Cd, Di, nck}; }
};

// torch's softplus (beta 1, threshold 20) and its derivative.
template <class C>
inline C softplus(C v) {
  return v > C(20) ? v : std::log1p(std::exp(v));
}
template <class C>
inline C softplus_grad(C v) {
  return v > C(20) ? C(1) : fused::sigmoid(v);
}

template <class C>
C* ptr(at::Tensor& t) {
  return t.numel() ? t.data_ptr<C>() : nullptr;
}

// Row r's input to the conv at position src (may be < 0: initial rows or zeros),
// converted to C in `buf` unless it can be read in place. Packed, a position
// before the sequence start `lo` is another sequence's: zeros, no leakage.
template <class T, class C>
const C* conv_input(const T* zx, const C* init, const Shape& s, int64_t b, int64_t src, int64_t lo, C* buf) {
  if (src < lo) {
    if (lo > 0 || !init) return nullptr;
    return init + (b * (s.K - 1) + (s.K - 1 + src)) * s.Cd;
  }
  const T* row = zx + (b * s.L + src) * s.W + s.xbc();
  if constexpr (std::is_same_v<T, C>) return row;
  fused::load(row, buf, s.Cd);
  return buf;
}

// xc[b, t, c] = silu(bias[c] + sum_k w[k][c] in(b, t - K + 1 + k, c)); wT is (K, Cd).
template <class T, class C>
void conv_forward(const T* zx, const C* init, const C* wT, const C* bias, C* xc, const Shape& s) {
  at::parallel_for(0, s.B * s.L, 16, [&](int64_t r0, int64_t r1) {
    std::vector<C> buf(s.Cd);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / s.L, t = r % s.L;
      C* o = xc + r * s.Cd;
      std::copy(bias, bias + s.Cd, o);
      for (int64_t k = 0; k < s.K; ++k) {
        const C* in = conv_input(zx, init, s, b, t - s.K + 1 + k, s.seq_start(t), buf.data());
        if (!in) continue;
        const C* w = wT + k * s.Cd;
        for (int64_t c = 0; c < s.Cd; ++c) o[c] += w[c] * in[c];
      }
      for (int64_t c = 0; c < s.Cd; ++c) o[c] = o[c] * fused::sigmoid(o[c]);
    }
  });
}

// dxc holds the gradient of xc; it is overwritten by the gradient of the
// pre-activation. Writes the input gradient into dzx's xBC columns and returns
// the weight gradient (K + 1, Cd): rows 0..K-1 for w[k], row K for the bias.
template <class T, class C>
at::Tensor conv_backward(const T* zx, const C* init, const C* wT, const C* bias, C* dxc, T* dzx, const Shape& s) {
  const int nt = at::get_num_threads();
  auto part = at::zeros({nt, s.K + 1, s.Cd}, at::TensorOptions().dtype(c10::CppTypeToScalarType<C>::value));
  C* pp = part.template data_ptr<C>();
  at::parallel_for(0, s.B * s.L, 16, [&](int64_t r0, int64_t r1) {
    std::vector<C> buf(s.Cd), pre(s.Cd);
    C* acc = pp + at::get_thread_num() * (s.K + 1) * s.Cd;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / s.L, t = r % s.L;
      std::copy(bias, bias + s.Cd, pre.begin());
      for (int64_t k = 0; k < s.K; ++k) {
        const C* in = conv_input(zx, init, s, b, t - s.K + 1 + k, s.seq_start(t), buf.data());
        if (!in) continue;
        const C* w = wT + k * s.Cd;
        for (int64_t c = 0; c < s.Cd; ++c) pre[c] += w[c] * in[c];
      }
      C* d = dxc + r * s.Cd;
      for (int64_t c = 0; c < s.Cd; ++c) {
        const C x = pre[c], sg = fused::sigmoid(x);
        d[c] *= sg * (C(1) + x * (C(1) - sg));
        acc[s.K * s.Cd + c] += d[c];
      }
      for (int64_t k = 0; k < s.K; ++k) {
        const C* in = conv_input(zx, init, s, b, t - s.K + 1 + k, s.seq_start(t), buf.data());
        if (!in) continue;
        C* a = acc + k * s.Cd;
        for (int64_t c = 0; c < s.Cd; ++c) a[c] += d[c] * in[c];
      }
    }
  });
  at::parallel_for(0, s.B * s.L, 16, [&](int64_t r0, int64_t r1) {
    std::vector<C> g(s.Cd);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / s.L, t = r % s.L;
      std::fill(g.begin(), g.end(), C(0));
      for (int64_t k = 0; k < s.K; ++k) {  // output t + K - 1 - k saw this row through w[k]
        const int64_t o = t + s.K - 1 - k;
        if (o >= s.L || s.seq_start(o) > t) continue;  // packed: o in a later sequence
        const C* d = dxc + (b * s.L + o) * s.Cd;
        const C* w = wT + k * s.Cd;
        for (int64_t c = 0; c < s.Cd; ++c) g[c] += w[c] * d[c];
      }
      fused::store(g.data(), dzx + r * s.W + s.xbc(), s.Cd);
    }
  });
  return part.sum(0);
}

// delta = softplus(dt + dt_bias) on valid positions (0 past a row's length),
// decay = exp(delta a) with a = -exp(A_log). Both (B, L, H). Packed, decay = 0
// at each sequence start: the scan's state resets there (and, as dS/d(decay)
// is then multiplied by 0 in the backward, A_log and dt get no gradient through it).
template <class T, class C>
void compute_delta(const T* zx, const C* dt_bias, const C* A_log, const int64_t* len, C* delta, C* decay,
                   const Shape& s) {
  at::parallel_for(0, s.B * s.L, 64, [&](int64_t r0, int64_t r1) {
    std::vector<C> dt(s.H);
    for (int64_t r = r0; r < r1; ++r) {
      const bool valid = !len || r % s.L < len[r / s.L];
      const bool reset = s.start && s.start[r % s.L] == r % s.L;
      fused::load(zx + r * s.W + s.dtc(), dt.data(), s.H);
      for (int64_t h = 0; h < s.H; ++h) {
        const C d = valid ? softplus(dt[h] + dt_bias[h]) : C(0);
        delta[r * s.H + h] = d;
        decay[r * s.H + h] = reset ? C(0) : std::exp(-d * std::exp(A_log[h]));
      }
    }
  });
}

Shape make_shape(const at::Tensor& zx, const MambaDims& d, const at::Tensor& starts) {
  Shape s{zx.size(0), zx.size(1), d.d_inner, d.d_state, d.nheads, d.headdim, d.d_conv, d.d_inner + 2 * d.d_state,
          zx.size(2), 0};
  if (starts.numel()) {
    TORCH_CHECK(s.B == 1 && starts.numel() == s.L, "mamba_core: packed input must be (1, T, W) with T starts");
    s.start = starts.data_ptr<int64_t>();
  }
  s.nck = std::max<int64_t>(1, (s.L + fused::kScanCheckpoint - 1) / fused::kScanCheckpoint);
  TORCH_CHECK(s.W == 2 * s.Di + 2 * s.N + s.H && s.H * s.P == s.Di, "mamba_core: bad zxbcdt width ", s.W);
  return s;
}

struct MambaCoreFn : torch::autograd::Function<MambaCoreFn> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& zx_in, const at::Tensor& conv_w,
                             const at::Tensor& conv_b, const at::Tensor& dt_bias, const at::Tensor& A_log,
                             const at::Tensor& D, const at::Tensor& norm_w, const at::Tensor& lengths,
                             const at::Tensor& conv_init, const at::Tensor& ssm_init, const at::Tensor& starts_in,
                             const MambaDims& dims) {
    auto zx = zx_in.contiguous();
    auto starts = starts_in.contiguous();
    const Shape s = make_shape(zx, dims, starts);
    const auto ct = zx.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    auto o = zx.options().dtype(ct);
    auto wT = conv_w.reshape({s.Cd, s.K}).t().to(ct).contiguous();
    auto cb = conv_b.to(ct).contiguous(), dtb = dt_bias.to(ct).contiguous(), al = A_log.to(ct).contiguous();
    auto Dd = D.to(ct).contiguous(), nw = norm_w.to(ct).contiguous();
    auto len = lengths.to(at::kLong).contiguous();
    auto cin = conv_init.to(ct).contiguous(), sin = ssm_init.to(ct).contiguous();
    auto xc = at::empty({s.B, s.L, s.Cd}, o), y = at::empty({s.B, s.L, s.Di}, o);
    auto delta = at::empty({s.B, s.L, s.H}, o), decay = at::empty({s.B, s.L, s.H}, o);
    auto ckpt = at::empty({s.B, s.H, s.nck, s.N, s.P}, o), fin = at::empty({s.B, s.H, s.P, s.N}, o);
    auto g = at::empty({s.B, s.L, s.Di}, o), rstd = at::empty({s.B, s.L}, o);
    fused::dispatch(zx.scalar_type(), [&](auto T0, auto C0) {
      using T = decltype(T0);
      using C = decltype(C0);
      const T* pzx = zx.data_ptr<T>();
      compute_delta<T, C>(pzx, dtb.data_ptr<C>(), al.data_ptr<C>(), len.numel() ? len.data_ptr<int64_t>() : nullptr,
                          delta.data_ptr<C>(), decay.data_ptr<C>(), s);
      conv_forward<T, C>(pzx, ptr<C>(cin), wT.data_ptr<C>(), cb.data_ptr<C>(), xc.data_ptr<C>(), s);
      fused::ssd_scan_forward<C>(xc.data_ptr<C>(), delta.data_ptr<C>(), decay.data_ptr<C>(), Dd.data_ptr<C>(),
                                 ptr<C>(sin), y.data_ptr<C>(), ckpt.data_ptr<C>(), fin.data_ptr<C>(), s.scan());
      const C* py = y.data_ptr<C>();
      const C* pw = nw.data_ptr<C>();
      C* pg = g.data_ptr<C>();
      C* pr = rstd.data_ptr<C>();
      at::parallel_for(0, s.B * s.L, 16, [&](int64_t r0, int64_t r1) {
        std::vector<C> zb(s.Di);
        for (int64_t r = r0; r < r1; ++r)
          pr[r] = fused::gated_norm_row(py + r * s.Di, pzx + r * s.W, pw, pg + r * s.Di, zb.data(), s.Di, (C)dims.eps);
      });
    });
    ctx->save_for_backward({zx, wT, cb, dtb, al, Dd, nw, len, cin, xc, y, rstd, ckpt, starts});
    ctx->saved_data["eps"] = dims.eps;
    ctx->saved_data["dims"] = std::vector<int64_t>{dims.d_inner, dims.d_state, dims.nheads, dims.headdim, dims.d_conv};
    ctx->saved_data["conv_w_sizes"] = conv_w.sizes().vec();
    ctx->mark_non_differentiable({fin});
    return {g, fin};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto sv = ctx->get_saved_variables();
    auto zx = sv[0], wT = sv[1], cb = sv[2], dtb = sv[3], al = sv[4], Dd = sv[5], nw = sv[6], len = sv[7];
    auto cin = sv[8], xc = sv[9], y = sv[10], rstd = sv[11], ckpt = sv[12], starts = sv[13];
    auto dv = ctx->saved_data["dims"].toIntVector();
    const MambaDims dims{dv[0], dv[1], dv[2], dv[3], dv[4], ctx->saved_data["eps"].toDouble()};
    const Shape s = make_shape(zx, dims, starts);
    const auto ct = y.scalar_type();
    auto o = y.options();
    auto go = grads[0].to(ct).contiguous();
    auto dzx = at::empty_like(zx);
    auto gy = at::empty({s.B, s.L, s.Di}, o);
    auto dxc = at::zeros({s.B, s.L, s.Cd}, o);
    auto delta = at::empty({s.B, s.L, s.H}, o), decay = at::empty({s.B, s.L, s.H}, o);
    auto ddelta = at::empty({s.B, s.L, s.H}, o);
    auto dD = at::zeros({s.B, s.H}, o), dAlog = at::zeros({s.B, s.H}, o);
    const int nt = at::get_num_threads();
    const int64_t G = s.B >= nt ? 1 : std::min<int64_t>(s.H, (nt + s.B - 1) / s.B);
    auto bc_part = G > 1 ? at::zeros({G, s.B, s.L, 2 * s.N}, o) : at::empty({0}, o);
    auto gw_part = at::zeros({nt, s.Di}, o), gdt_part = at::zeros({nt, s.H}, o);
    at::Tensor gconv;
    fused::dispatch(zx.scalar_type(), [&](auto T0, auto C0) {
      using T = decltype(T0);
      using C = decltype(C0);
      const T* pzx = zx.data_ptr<T>();
      T* pdzx = dzx.data_ptr<T>();
      // 1. gated norm: gradient of y, and of z straight into dzx.
      const C *py = y.data_ptr<C>(), *pw = nw.data_ptr<C>(), *pgo = go.data_ptr<C>(), *pr = rstd.data_ptr<C>();
      C *pgy = gy.data_ptr<C>(), *pgw = gw_part.data_ptr<C>();
      at::parallel_for(0, s.B * s.L, 16, [&](int64_t r0, int64_t r1) {
        C* acc = pgw + at::get_thread_num() * s.Di;
        std::vector<C> zb(s.Di), gb(s.Di), gz(s.Di);
        for (int64_t r = r0; r < r1; ++r) {
          fused::gated_norm_row_backward(py + r * s.Di, pzx + r * s.W, pw, pgo + r * s.Di, pr[r], pgy + r * s.Di,
                                         gz.data(), acc, zb.data(), gb.data(), s.Di);
          fused::store(gz.data(), pdzx + r * s.W, s.Di);
        }
      });
      // 2. scan, in reverse.
      const int64_t* pl = len.numel() ? len.data_ptr<int64_t>() : nullptr;
      compute_delta<T, C>(pzx, dtb.data_ptr<C>(), al.data_ptr<C>(), pl, delta.data_ptr<C>(), decay.data_ptr<C>(), s);
      fused::ssd_scan_backward<C>(xc.data_ptr<C>(), delta.data_ptr<C>(), decay.data_ptr<C>(), al.data_ptr<C>(),
                                  Dd.data_ptr<C>(), ckpt.data_ptr<C>(), pgy, dxc.data_ptr<C>(), ptr<C>(bc_part), G,
                                  ddelta.data_ptr<C>(), dD.data_ptr<C>(), dAlog.data_ptr<C>(), s.scan());
      if (G > 1) dxc.narrow(2, s.Di, 2 * s.N).add_(bc_part.sum(0));
      // 3. dt: through the mask and softplus into dzx's dt columns.
      const C *pdd = ddelta.data_ptr<C>(), *pb = dtb.data_ptr<C>();
      C* pgdt = gdt_part.data_ptr<C>();
      at::parallel_for(0, s.B * s.L, 64, [&](int64_t r0, int64_t r1) {
        C* acc = pgdt + at::get_thread_num() * s.H;
        std::vector<C> dt(s.H);
        for (int64_t r = r0; r < r1; ++r) {
          const bool valid = !pl || r % s.L < pl[r / s.L];
          fused::load(pzx + r * s.W + s.dtc(), dt.data(), s.H);
          for (int64_t h = 0; h < s.H; ++h) {
            dt[h] = valid ? pdd[r * s.H + h] * softplus_grad(dt[h] + pb[h]) : C(0);
            acc[h] += dt[h];
          }
          fused::store(dt.data(), pdzx + r * s.W + s.dtc(), s.H);
        }
      });
      // 4. conv + SiLU into dzx's xBC columns.
      gconv = conv_backward<T, C>(pzx, ptr<C>(cin), wT.data_ptr<C>(), cb.data_ptr<C>(), dxc.data_ptr<C>(), pdzx, s);
    });
    auto wshape = ctx->saved_data["conv_w_sizes"].toIntVector();
    auto gw = gconv.narrow(0, 0, s.K).t().contiguous().view(wshape);
    auto gb = gconv.select(0, s.K).contiguous();
    return {dzx,
            gw,
            gb,
            gdt_part.sum(0),
            dAlog.sum(0),
            dD.sum(0),
            gw_part.sum(0),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

MambaCoreResult mamba_core(const at::Tensor& zxbcdt, const at::Tensor& conv_w, const at::Tensor& conv_b,
                           const at::Tensor& dt_bias, const at::Tensor& A_log, const at::Tensor& D,
                           const at::Tensor& norm_w, const MambaDims& dims, const at::Tensor& lengths,
                           const at::Tensor& conv_init, const at::Tensor& ssm_init, const at::Tensor& seq_starts) {
  TORCH_CHECK(!seq_starts.defined() || (!lengths.defined() && !conv_init.defined() && !ssm_init.defined()),
              "mamba_core: packed input (seq_starts) takes no lengths or initial states");
  TORCH_CHECK(!seq_starts.defined() || seq_starts.is_cpu(), "mamba_core: seq_starts must be on the CPU");
  // 1.13's custom functions take no undefined inputs: absent ones are empty.
  auto none = at::empty({0}, zxbcdt.options().dtype(at::kFloat));
  RECORD_USER_SCOPE("dynarch::mamba_core");  // names the forward loops in profiles
  auto r = MambaCoreFn::apply(zxbcdt, conv_w, conv_b, dt_bias, A_log, D, norm_w,
                              lengths.defined() ? lengths : none.to(at::kLong), conv_init.defined() ? conv_init : none,
                              ssm_init.defined() ? ssm_init : none,
                              seq_starts.defined() ? seq_starts.to(at::kLong) : none.to(at::kLong), dims);
  return {r[0], r[1]};
}

}  // namespace dynarch

#include "model/layers/mamba2.h"

#include <torch/torch.h>

#include "core/forward_context.h"
#include "kernels/cpu/gemm/bmm.h"
#include "kernels/cpu/dense/linear_rows.h"
#include "kernels/cpu/mamba/mamba_step.h"
#include "kernels/cpu/mamba/mamba_core.h"
#include "kernels/cpu/dense/norm_act.h"

namespace dynarch {

namespace {
// exp(segsum) matrix: out[..., i, j] = sum_{k=j+1..i} a_k for j <= i, -inf above
// the diagonal. Built by a masked cumsum (not cum_i - cum_j) for accuracy.
at::Tensor segsum(const at::Tensor& a) {
  // As the official SSD kernels: differences of the in-chunk cumulative sum,
  // masked to -inf above the diagonal before exp (arguments are <= 0 below it,
  // so nothing overflows; fp32 error ~ eps * |cum| in the exponent).
  const int64_t T = a.size(-1);
  auto cs = a.cumsum(-1);
  auto d = cs.unsqueeze(-1) - cs.unsqueeze(-2);  // [..., i, j] = cum_i - cum_j
  auto upper = at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(a.device())).triu(1);
  return d.masked_fill(upper, -std::numeric_limits<double>::infinity());
}
}  // namespace

SsdResult ssd_sequential(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a,
                         const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& init) {
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2), P = x.size(3), N = Bm.size(2);
  auto S = init.defined() ? init : at::zeros({B, H, P, N}, x.options());
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < L; ++t) {
    auto dtt = dt.select(1, t);                                      // (B, H)
    auto decay = at::exp(dtt * a).view({B, H, 1, 1});
    auto xb = (dtt.unsqueeze(-1) * x.select(1, t)).unsqueeze(-1) *  // (B,H,P,1)
              Bm.select(1, t).view({B, 1, 1, N});
    S = decay * S + xb;
    ys.push_back(at::matmul(S, Cm.select(1, t).view({B, 1, N, 1})).squeeze(-1));  // (B,H,P)
  }
  return {at::stack(ys, 1), S};
}

SsdResult ssd_chunked(const at::Tensor& x_in, const at::Tensor& dt_in, const at::Tensor& a,
                      const at::Tensor& B_in, const at::Tensor& C_in, int64_t Q,
                      const at::Tensor& init) {
  const int64_t B = x_in.size(0), L = x_in.size(1), H = x_in.size(2), P = x_in.size(3);
  const int64_t N = B_in.size(2);
  Q = std::min<int64_t>(Q, std::max<int64_t>(L, 1));
  const int64_t nc = (L + Q - 1) / Q, Lp = nc * Q, pad = Lp - L;
  // Zero padding at the end: dt = 0 there, so padded steps neither decay nor add.
  auto padL = [&](const at::Tensor& t) {
    if (pad == 0) return t;
    auto s = t.sizes().vec();
    s[1] = pad;
    return at::cat({t, at::zeros(s, t.options())}, 1);
  };
  auto x = padL(x_in), dt = padL(dt_in), Bm = padL(B_in), Cm = padL(C_in);
  auto xc = x.view({B, nc, Q, H, P}).permute({0, 3, 1, 2, 4});     // (B,H,c,Q,P)
  auto dtc = dt.view({B, nc, Q, H}).permute({0, 3, 1, 2});         // (B,H,c,Q)
  auto Bc = Bm.view({B, nc, Q, N});                                // (B,c,Q,N)
  auto Cc = Cm.view({B, nc, Q, N});
  auto dA = dtc * a.view({1, H, 1, 1});                            // (B,H,c,Q)
  auto cum = dA.cumsum(-1);
  auto Xb = xc * dtc.unsqueeze(-1);                                // dt-scaled inputs

  // 1. Intra-chunk (diagonal blocks): Y = (C B^T o exp(segsum)) Xb.
  auto Lmat = at::exp(segsum(dA));                                 // (B,H,c,Q,Q)
  auto CB = bmm_small(Cc, Bc.transpose(-1, -2)).unsqueeze(1);     // (B,1,c,Q,Q)
  auto Y = bmm_small(CB * Lmat, Xb);                              // (B,H,c,Q,P)

  // 2. Per-chunk final states: S_blk = sum_j exp(cum_last - cum_j) Xb_j (x) B_j.
  auto decay_states = at::exp(cum.narrow(-1, Q - 1, 1) - cum);     // (B,H,c,Q)
  auto Sblk = bmm_small((Xb * decay_states.unsqueeze(-1)).transpose(-1, -2),
                         Bc.unsqueeze(1));                         // (B,H,c,P,N)

  // 3. Inter-chunk recurrence (short sequential loop over chunks).
  auto chunk_decay = at::exp(cum.select(-1, Q - 1));               // (B,H,c)
  auto S = init.defined() ? init.to(Sblk.scalar_type()) : at::zeros({B, H, P, N}, Sblk.options());
  std::vector<at::Tensor> S_in;
  S_in.reserve(nc);
  for (int64_t c = 0; c < nc; ++c) {
    S_in.push_back(S);
    S = chunk_decay.select(2, c).view({B, H, 1, 1}) * S + Sblk.select(2, c);
  }
  auto Sin = at::stack(S_in, 2);                                   // (B,H,c,P,N)

  // 4. Contribution of the incoming state: exp(cum_i) C_i . S_in.
  auto Yoff = bmm_small(Cc.unsqueeze(1), Sin.transpose(-1, -2)) * at::exp(cum).unsqueeze(-1);
  auto y = (Y + Yoff).permute({0, 2, 3, 1, 4}).reshape({B, Lp, H, P});
  if (pad) y = y.narrow(1, 0, L);
  return {y, S};
}

Mamba2::Mamba2(int64_t d, int64_t n, int64_t dc, int64_t expand, int64_t hd, int64_t chunk)
    : d_model(d), d_state(n), d_conv(dc), d_inner(expand * d), headdim(hd),
      nheads(expand * d / hd), conv_dim(expand * d + 2 * n), chunk_size(chunk) {
  const int64_t d_in_proj = 2 * d_inner + 2 * d_state + nheads;
  in_proj = register_module("in_proj", torch::nn::Linear(torch::nn::LinearOptions(d, d_in_proj).bias(false)));
  conv1d = register_module("conv1d", torch::nn::Conv1d(torch::nn::Conv1dOptions(conv_dim, conv_dim, d_conv)
                                                           .groups(conv_dim).bias(true)));
  dt_bias = register_parameter("dt_bias", torch::empty({nheads}));
  A_log = register_parameter("A_log", torch::empty({nheads}));
  D = register_parameter("D", torch::ones({nheads}));
  norm = register_module("norm", std::make_shared<RMSNorm>(d_inner));
  out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(d_inner, d).bias(false)));
  reset_ssm_parameters();
}

void Mamba2::reset_ssm_parameters() {
  torch::NoGradGuard ng;
  auto u = torch::rand({nheads}, torch::kDouble);
  auto dt = at::exp(u * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3)).clamp_min(1e-4);
  dt_bias.copy_(dt + at::log(-at::expm1(-dt)));  // inverse softplus
  A_log.copy_(at::log(torch::rand({nheads}, torch::kDouble) * 15.0 + 1.0));
  D.fill_(1.0);
}

LayerCache Mamba2::new_cache(int64_t batch, at::ScalarType dtype) const {
  LayerCache c;
  auto opts = at::TensorOptions().dtype(dtype).device(in_proj->weight.device());
  c.conv = at::zeros({batch, conv_dim, d_conv}, opts);
  c.ssm = at::zeros({batch, nheads, headdim, d_state}, opts.dtype(at::kFloat));
  if (dtype == at::kDouble) c.ssm = c.ssm.to(at::kDouble);
  return c;
}

namespace {
// The last d_conv pre-conv rows before each row's end (the decode conv cache).
// xBC (B, L, C); left (B, C, K) the rows before position 0.
at::Tensor conv_tail(const at::Tensor& xBC, const at::Tensor& left, const at::Tensor& lengths, int64_t K) {
  const int64_t B = xBC.size(0), L = xBC.size(1), C = xBC.size(2);
  auto xpad = at::cat({left.to(xBC.scalar_type()), xBC.transpose(1, 2)}, 2);  // column t + K holds position t
  if (!lengths.defined()) return xpad.narrow(2, L, K).detach().contiguous();
  auto idx = (lengths.view({B, 1, 1}) + at::arange(K, lengths.options()).view({1, 1, K})).expand({B, C, K});
  return xpad.gather(2, idx).detach().contiguous();
}
}  // namespace

at::Tensor Mamba2::forward(const at::Tensor& u, LayerCache* cache, int64_t pos0, const at::Tensor& lengths) {
  if (!forward_context().fast_kernels(u)) return forward_reference(u, cache, pos0, lengths);
  const bool cont = cache && pos0 > 0;
  auto zx = in_proj->forward(u);
  auto r = mamba_core(zx, conv1d->weight, conv1d->bias, dt_bias, A_log, D, norm->weight,
                      MambaDims{d_inner, d_state, nheads, headdim, d_conv}, lengths,
                      cont ? cache->conv.narrow(2, 1, d_conv - 1).transpose(1, 2) : at::Tensor(),
                      cont ? cache->ssm : at::Tensor());
  if (cache) {
    torch::NoGradGuard ng;
    auto left = cont ? cache->conv : at::zeros({u.size(0), conv_dim, d_conv}, zx.options());
    cache->conv = conv_tail(zx.narrow(-1, d_inner, conv_dim), left, lengths, d_conv);
    cache->ssm = r.state.to(cache->ssm.scalar_type());
  }
  return out_proj->forward(r.g);
}

at::Tensor Mamba2::forward_packed(const at::Tensor& u, const PackedSeqs& seqs) {
  if (!forward_context().fast_kernels(u)) return Mixer::forward_packed(u, seqs);
  auto zx = in_proj->forward(u);
  auto r = mamba_core(zx, conv1d->weight, conv1d->bias, dt_bias, A_log, D, norm->weight,
                      MambaDims{d_inner, d_state, nheads, headdim, d_conv}, {}, {}, {}, seqs.starts());
  return out_proj->forward(r.g);
}

at::Tensor Mamba2::forward_reference(const at::Tensor& u, LayerCache* cache, int64_t pos0, const at::Tensor& lengths) {
  const int64_t B = u.size(0), L = u.size(1);
  // Three products over row slices of in_proj.weight ([z | xBC | dt]).
  const auto& W = in_proj->weight;
  auto z = at::linear(u, W.narrow(0, 0, d_inner));
  auto xBC = at::linear(u, W.narrow(0, d_inner, conv_dim));
  auto dt = at::linear(u, W.narrow(0, d_inner + conv_dim, nheads));
  // Causal depthwise conv with d_conv rows of left context: the cached
  // pre-conv rows when continuing, zeros otherwise.
  auto xt = xBC.transpose(1, 2);  // (B, C, L)
  at::Tensor left = (cache && pos0 > 0) ? cache->conv.to(xt.scalar_type())
                                        : at::zeros({B, conv_dim, d_conv}, xt.options());
  auto xpad = at::cat({left, xt}, 2);  // column t + d_conv holds position t
  if (cache) cache->conv = conv_tail(xBC, left, lengths, d_conv);
  auto xc = at::silu(at::conv1d(xpad.narrow(2, 1, L + d_conv - 1), conv1d->weight, conv1d->bias, at::IntArrayRef{1},
                                at::IntArrayRef{0}, at::IntArrayRef{1}, conv_dim))
                .transpose(1, 2);
  auto xs = xc.narrow(-1, 0, d_inner).reshape({B, L, nheads, headdim});
  auto Bm = xc.narrow(-1, d_inner, d_state);
  auto Cm = xc.narrow(-1, d_inner + d_state, d_state);
  // SSM math in fp32 (fp64 when the model is fp64, for tests).
  auto fdt = u.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto delta = at::softplus(dt.to(fdt) + dt_bias.to(fdt));
  if (lengths.defined())  // dt = 0 past the end: the state neither decays nor takes input
    delta = delta * (at::arange(L, lengths.options()).view({1, L}) < lengths.view({B, 1})).to(fdt).unsqueeze(-1);
  auto a = -at::exp(A_log.to(fdt));
  at::Tensor init = (cache && pos0 > 0) ? cache->ssm.to(fdt) : at::Tensor();
  SsdResult r = ssd_sequential(xs.to(fdt), delta, a, Bm.to(fdt), Cm.to(fdt), init);
  if (cache) cache->ssm = r.state.detach();
  auto y = r.y + xs.to(fdt) * D.to(fdt).view({1, 1, nheads, 1});
  auto g = ForwardContext::cpu_kernels_apply(y) ? gated_rms_norm_fused(y.reshape({B, L, d_inner}), z, norm->weight)
                                                : gated_rms_norm(y.reshape({B, L, d_inner}), z, norm->weight);
  return out_proj->forward(g);
}

at::Tensor Mamba2::step_reference(const at::Tensor& u, LayerCache& cache) {
  const int64_t B = u.size(0);
  auto zxbcdt = in_proj->forward(u);
  auto z = zxbcdt.narrow(-1, 0, d_inner);
  auto xBC = zxbcdt.narrow(-1, d_inner, conv_dim);
  auto dt = zxbcdt.narrow(-1, d_inner + conv_dim, nheads);
  cache.conv = at::cat({cache.conv.narrow(2, 1, d_conv - 1), xBC.unsqueeze(2).to(cache.conv.scalar_type())}, 2);
  auto xc = at::silu((cache.conv * conv1d->weight.squeeze(1)).sum(-1) + conv1d->bias);
  auto fdt = cache.ssm.scalar_type();
  auto xs = xc.narrow(-1, 0, d_inner).reshape({B, nheads, headdim}).to(fdt);
  auto Bv = xc.narrow(-1, d_inner, d_state).to(fdt);
  auto Cv = xc.narrow(-1, d_inner + d_state, d_state).to(fdt);
  auto delta = at::softplus(dt.to(fdt) + dt_bias.to(fdt));  // (B, H)
  auto a = -at::exp(A_log.to(fdt));
  auto decay = at::exp(delta * a).view({B, nheads, 1, 1});
  cache.ssm = decay * cache.ssm + (delta.unsqueeze(-1) * xs).unsqueeze(-1) * Bv.view({B, 1, 1, d_state});
  auto y = at::matmul(cache.ssm, Cv.view({B, 1, d_state, 1})).squeeze(-1) + xs * D.to(fdt).view({1, nheads, 1});
  auto g = gated_rms_norm(y.reshape({B, d_inner}), z, norm->weight);
  return out_proj->forward(g);
}

at::Tensor Mamba2::fused_residual_step(const at::Tensor& r, const at::Tensor& norm_w, double norm_eps,
                                       LayerCache& cache, const std::vector<int64_t>&) {
  if (!forward_context().fast_kernels(r)) return {};
  return mamba_block_step(r, {norm_w, norm_eps, in_proj->weight, out_proj->weight, conv1d->weight, conv1d->bias, dt_bias,
                              A_log, D, norm->weight, d_inner, d_state},
                          cache.conv, cache.ssm);
}

at::Tensor Mamba2::step(const at::Tensor& u, LayerCache& cache, const std::vector<int64_t>&) {
  if (!forward_context().fast_kernels(u)) return step_reference(u, cache);
  auto zx = linear_rows(u, in_proj->weight);
  auto g = mamba_step_core(zx, cache.conv, cache.ssm, conv1d->weight, conv1d->bias, dt_bias, A_log, D, norm->weight,
                           d_inner, d_state);
  return linear_rows(g, out_proj->weight);
}

}  // namespace dynarch

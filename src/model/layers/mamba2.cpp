#include "model/layers/mamba2.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/forward_context.h"
#include "kernels/cpu/gemm/bmm.h"
#include "kernels/cpu/dense/linear_rows.h"
#include "kernels/cpu/mamba/causal_conv.h"
#include "kernels/cpu/mamba/mamba_step.h"
#include "kernels/cpu/mamba/mamba_core.h"
#include "kernels/cpu/dense/norm_act.h"

namespace dynarch {

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
  if (!forward_context().fast_kernels(u))  // off the CPU: the device ops, chunked
    return forward_context().reference() ? forward_reference(u, cache, pos0, lengths)
                                         : forward_chunked(u, cache, pos0, lengths);
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
  if (forward_context().reference()) return Mixer::forward_packed(u, seqs);  // the padded reference
  if (!forward_context().fast_kernels(u)) return forward_packed_chunked(u, seqs);
  auto zx = in_proj->forward(u);
  auto r = mamba_core(zx, conv1d->weight, conv1d->bias, dt_bias, A_log, D, norm->weight,
                      MambaDims{d_inner, d_state, nheads, headdim, d_conv}, {}, {}, {}, seqs.starts());
  return out_proj->forward(r.g);
}

at::Tensor Mamba2::forward_packed_chunked(const at::Tensor& u, const PackedSeqs& seqs) {
  check(u.dim() == 3 && u.size(0) == 1 && u.size(1) == seqs.total(),
        "Mamba2::forward_packed_chunked: expected a packed row (1, " + std::to_string(seqs.total()) + ", D), got " +
            c10::str(u.sizes()));
  return forward_ops(u, nullptr, 0, {}, true, seqs.starts_on(u.device()));
}

at::Tensor Mamba2::forward_reference(const at::Tensor& u, LayerCache* cache, int64_t pos0, const at::Tensor& lengths) {
  return forward_ops(u, cache, pos0, lengths, false);
}

at::Tensor Mamba2::forward_chunked(const at::Tensor& u, LayerCache* cache, int64_t pos0, const at::Tensor& lengths) {
  return forward_ops(u, cache, pos0, lengths, true);
}

// Op by op; `device_ops`: the conv and the scan as the device ops of kernels/
// (chunked), else torch's conv1d and the sequential scan (the reference).
// seq_start (device ops only): packed rows, no cache.
at::Tensor Mamba2::forward_ops(const at::Tensor& u, LayerCache* cache, int64_t pos0, const at::Tensor& lengths,
                               bool device_ops, const at::Tensor& seq_start) {
  const int64_t B = u.size(0), L = u.size(1);
  // Three products over row slices of in_proj.weight ([z | xBC | dt]).
  const auto& W = in_proj->weight;
  auto z = at::linear(u, W.narrow(0, 0, d_inner));
  auto xBC = at::linear(u, W.narrow(0, d_inner, conv_dim));
  auto dt = at::linear(u, W.narrow(0, d_inner + conv_dim, nheads));
  // Causal depthwise conv with d_conv rows of left context: the cached
  // pre-conv rows when continuing, zeros otherwise.
  const bool cont = cache && pos0 > 0;
  at::Tensor left = cont ? cache->conv.to(xBC.scalar_type()) : at::zeros({B, conv_dim, d_conv}, xBC.options());
  if (cache) cache->conv = conv_tail(xBC, left, lengths, d_conv);
  at::Tensor xc;
  if (device_ops) {
    xc = causal_conv1d_silu(xBC, conv1d->weight, conv1d->bias,
                            cont ? left.narrow(2, 1, d_conv - 1).transpose(1, 2) : at::Tensor(), seq_start);
  } else {
    auto xpad = at::cat({left, xBC.transpose(1, 2)}, 2);  // column t + d_conv holds position t
    xc = at::silu(at::conv1d(xpad.narrow(2, 1, L + d_conv - 1), conv1d->weight, conv1d->bias, at::IntArrayRef{1},
                             at::IntArrayRef{0}, at::IntArrayRef{1}, conv_dim))
             .transpose(1, 2);
  }
  auto xs = xc.narrow(-1, 0, d_inner).reshape({B, L, nheads, headdim});
  auto Bm = xc.narrow(-1, d_inner, d_state);
  auto Cm = xc.narrow(-1, d_inner + d_state, d_state);
  // SSM math in fp32 (fp64 when the model is fp64, for tests).
  auto fdt = u.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto delta = at::softplus(dt.to(fdt) + dt_bias.to(fdt));
  if (lengths.defined())  // dt = 0 past the end: the state neither decays nor takes input
    delta = delta * (at::arange(L, lengths.options()).view({1, L}) < lengths.view({B, 1})).to(fdt).unsqueeze(-1);
  auto a = -at::exp(A_log.to(fdt));
  at::Tensor init = cont ? cache->ssm.to(fdt) : at::Tensor();
  const auto xf = xs.to(fdt);  // the scan's input and the D skip's
  SsdResult r = device_ops
                    ? ssd_chunk_scan(xf, delta, a, Bm.to(fdt), Cm.to(fdt), chunk_size, init, seq_start)
                    : ssd_sequential(xf, delta, a, Bm.to(fdt), Cm.to(fdt), init);
  if (cache) cache->ssm = r.state.detach();
  auto y = r.y + xf * D.to(fdt).view({1, 1, nheads, 1});
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

// Fast mode: the fused step on the CPU, and on CUDA through mamba_step_core's
// hook (kernels/cuda/mamba/mamba_step.cu); elsewhere, or in reference mode, the ops.
at::Tensor Mamba2::step(const at::Tensor& u, LayerCache& cache, const std::vector<int64_t>&) {
  if (forward_context().reference() || !mamba_step_core_applies(u.device())) return step_reference(u, cache);
  auto zx = linear_rows(u, in_proj->weight);
  auto g = mamba_step_core(zx, cache.conv, cache.ssm, conv1d->weight, conv1d->bias, dt_bias, A_log, D, norm->weight,
                           d_inner, d_state);
  return linear_rows(g, out_proj->weight);
}

}  // namespace dynarch

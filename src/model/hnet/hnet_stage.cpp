#include "model/hnet/hnet_stage.h"

#include <torch/torch.h>

#include <optional>

#include "core/compat.h"
#include "core/device.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "kernels/cpu/dense/linear_rows.h"
#include "model/hmodel/hmodel.h"
#include "model/layers/packing.h"

namespace dynarch {

namespace {
// The innermost stage's main network: an H-Model when the config has one.
std::shared_ptr<Stack> make_main_network(const ModelConfig& c, int s, const StackOptions& o) {
  if (c.hmodel) return std::make_shared<HModel>(c, s, o);
  return std::make_shared<Isotropic>(c.stages.at(s).main, o);
}
}  // namespace

HNetStage::HNetStage(const ModelConfig& c, int s, int64_t dprev)
    : stage(s), innermost(c.stages.at(s).innermost), d_model(c.d_model[s]), d_prev(dprev) {
  const auto& st = c.stages[s];
  const auto o = stack_options(c, s);
  if (d_model > d_prev) pad_dimension = register_parameter("pad_dimension", torch::zeros({d_model - d_prev}));
  if (innermost) {
    main_stack = register_module("main_network", make_main_network(c, s, o));
    return;
  }
  encoder = register_module("encoder", std::make_shared<Isotropic>(st.encoder, o));
  routing_module = register_module("routing_module", std::make_shared<RoutingModule>(d_model));
  residual_proj = register_module("residual_proj", torch::nn::Linear(torch::nn::LinearOptions(d_model, d_model).bias(true)));
  {
    torch::NoGradGuard ng;
    residual_proj->weight.zero_();  // bias keeps the default U(-1/sqrt(D), 1/sqrt(D))
  }
  inner = register_module("main_network", std::make_shared<HNetStage>(c, s + 1, d_model));
  decoder = register_module("decoder", std::make_shared<Isotropic>(st.decoder, o));
}

at::Tensor HNetStage::pad(const at::Tensor& x) const {
  if (!pad_dimension.defined()) return x;
  auto sizes = x.sizes().vec();
  sizes.back() = pad_dimension.size(0);
  return at::cat({x, pad_dimension.to(x.scalar_type()).expand(sizes)}, -1);
}

void HNetStage::init_weights(double n_res_outer) {
  if (innermost) {
    main_stack->init_linears(n_res_outer + main_stack->height);
    return;
  }
  const double n = n_res_outer + encoder->height + decoder->height;
  encoder->init_linears(n);
  decoder->init_linears(n);
  inner->init_weights(n);
}

int HNetStage::stage_of(const std::string& name) const {
  // Outer stage s owns names not under "main_network."; the innermost stage
  // owns its main network and pad.
  static const std::string inner_prefix = "main_network.";
  if (innermost || name.rfind(inner_prefix, 0) != 0) return stage;
  return inner->stage_of(name.substr(inner_prefix.size()));
}

ModelState HNetStage::new_state(int64_t B, at::ScalarType dtype) const {
  ModelState s;
  if (innermost) {
    s.main = main_stack->new_state(B, dtype);
    return s;
  }
  auto ct = dtype == at::kDouble ? at::kDouble : at::kFloat;
  s.enc = encoder->new_state(B, dtype);
  s.dec = decoder->new_state(B, dtype);
  const auto on = at::TensorOptions().device(residual_proj->weight.device());
  s.last = at::zeros({B, d_model}, on.dtype(ct));
  s.last_zbar = at::zeros({B, d_model}, on.dtype(ct));
  s.seen = at::zeros({B}, on.dtype(at::kBool));
  s.inner = std::make_shared<ModelState>(inner->new_state(B, dtype));
  return s;
}

namespace {
// Row `lengths[b] - 1` of x (B, L, D) for every b.
at::Tensor last_valid(const at::Tensor& x, const at::Tensor& lengths) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  auto idx = lengths.defined() ? (lengths - 1).clamp_min(0) : at::full({B}, L - 1, x.options().dtype(at::kLong));
  return x.gather(1, idx.view({B, 1, 1}).expand({B, 1, D})).squeeze(1);
}
}  // namespace

namespace {
// Packed mode (core/forward_context.h): this stage's rows as packed sequences
// when the context asks for it, the rows have padding (inner stages,
// classifier batches) and
// there is no state (caches are per padded row). Null: run padded.
std::optional<PackedSeqs> packing_for(const at::Tensor& x, const at::Tensor& lengths, const ModelState* st) {
  if (!forward_context().packed || st || !lengths.defined()) return std::nullopt;
  auto pk = packing_from_lengths(lengths, x.size(1));
  if (pk.total() == x.size(0) * x.size(1)) return std::nullopt;  // no padding: nothing to save
  return pk;
}

// A stack on x (B, L, D): padded, or packed and unpacked around its forward.
at::Tensor run_stack(Stack& s, const at::Tensor& x, StackState* st, const at::Tensor& lengths,
                     const std::optional<PackedSeqs>& pk) {
  if (!pk) return s.forward(x, st, lengths);
  return unpack(s.forward_packed(pack(x, *pk), *pk), *pk);
}
}  // namespace

at::Tensor HNetStage::forward(const at::Tensor& x_in, const at::Tensor& lengths, ModelState* st) {
  auto x = pad(x_in);
  const auto pk = packing_for(x, lengths, st);
  if (innermost) {
    auto y = run_stack(*main_stack, x, st ? &st->main : nullptr, lengths, pk);
    return y.narrow(-1, 0, d_prev);
  }
  const int64_t B = x.size(0), L = x.size(1);
  auto mask = lengths.defined() ? at::arange(L, lengths.options()).view({1, L}) < lengths.view({B, 1}) : at::Tensor();
  auto xh = run_stack(*encoder, x, st ? &st->enc : nullptr, lengths, pk);  // fp32 (rmsnorm output)
  at::Tensor r;
  {
    compat::AutocastScope fp32(false);  // the residual path stays fp32
    auto ct = xh.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    r = at::linear(xh.to(ct), residual_proj->weight.to(ct), residual_proj->bias.to(ct));
  }
  const bool cont = st && st->seen.defined() && st->seen.any().item<bool>();
  if (cont) check(st->seen.all().item<bool>(), "H-Net: continuing a batch whose rows are in different states");
  auto rt = routing_module->forward(xh, mask, cont ? st->last : at::Tensor());
  if (auto* traces = forward_context().stage_traces) traces->push_back({rt.p, rt.b, mask});
  auto ch = downsample(xh, rt.b);
  auto inner_len = ch.mask.sum(1);
  auto zhat = inner->forward(ch.x, inner_len, st ? st->inner.get() : nullptr);
  auto p_chunks = rt.p.gather(1, ch.index);
  auto ztil = dechunk(zhat, p_chunks, rt.b, cont ? st->last_zbar : at::Tensor());
  auto z = ztil.to(r.scalar_type()) * ste_ones(rt.c).unsqueeze(-1) + r;
  auto y = run_stack(*decoder, z, st ? &st->dec : nullptr, lengths, pk);
  if (st) {
    st->last = last_valid(xh, lengths).detach().to(st->last.scalar_type());
    st->last_zbar = last_valid(ztil, lengths).detach().to(st->last_zbar.scalar_type()).clone();  // updated in place by step
    st->seen = at::ones({B}, x.options().dtype(at::kBool));
  }
  return y.narrow(-1, 0, d_prev);
}

at::Tensor HNetStage::step(const at::Tensor& x_in, ModelState& st) {
  auto x = pad(x_in);
  if (innermost) return main_stack->step(x, st.main).narrow(-1, 0, d_prev);
  auto h = encoder->step(x, st.enc);
  at::Tensor r;
  {
    compat::AutocastScope fp32(false);
    auto ct = st.last.scalar_type();
    r = linear_rows(h.to(ct), residual_proj->weight.to(ct), residual_proj->bias.to(ct));
  }
  auto p = routing_module->step_p(h, st.last, st.seen);
  st.last = h.detach().to(st.last.scalar_type());
  st.seen.fill_(true);
  const int64_t B = p.size(0);
  auto pf = p.to(at::kCPU, at::kDouble).contiguous();  // decides which rows run the inner network
  const double* pp = pf.data_ptr<double>();
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < B; ++b)
    if (pp[b] > 0.5) rows.push_back(b);
  const int64_t nb = rows.size();
  at::Tensor zhat;
  if (nb == B) {
    StreamWeightsScope stream;  // inner weights are read once per chunk: keep the outer ones cached
    zhat = inner->step(h, *st.inner).to(st.last_zbar.scalar_type());
  } else if (nb > 0) {  // inner network only on boundary rows, with their own positions
    auto ri = index_tensor(rows, h.device());
    auto sub = select_rows(*st.inner, ri);
    StreamWeightsScope stream;
    auto zr = inner->step(h.index_select(0, ri), sub);
    scatter_rows(*st.inner, ri, sub);
    zhat = at::zeros_like(st.last_zbar).index_copy_(0, ri, zr.to(st.last_zbar.scalar_type()));
  }
  // EMA in place: boundary rows take P = clamp(p) of the new chunk, others keep z̄.
  if (nb > 0 && !ForwardContext::cpu_kernels_apply(zhat)) {  // the same update in tensor ops
    auto ri = index_tensor(rows, zhat.device());
    auto P = p.index_select(0, ri).to(at::kDouble).clamp(1e-4, 1 - 1e-4).to(zhat.scalar_type()).unsqueeze(-1);
    auto zb = st.last_zbar.index_select(0, ri);
    st.last_zbar.index_copy_(0, ri, P * zhat.index_select(0, ri) + (1 - P) * zb);
  } else if (nb > 0) {
    auto zc = zhat.contiguous();
    AT_DISPATCH_FLOATING_TYPES(st.last_zbar.scalar_type(), "ema_step", [&] {
      scalar_t* zb = st.last_zbar.data_ptr<scalar_t>();
      const scalar_t* zn = zc.data_ptr<scalar_t>();
      const int64_t D = st.last_zbar.size(1);
      for (int64_t b : rows) {
        const scalar_t P = (scalar_t)std::min(std::max(pp[b], 1e-4), 1 - 1e-4);
        for (int64_t d = 0; d < D; ++d) zb[b * D + d] = P * zn[b * D + d] + (1 - P) * zb[b * D + d];
      }
    });
  }
  const auto& zbar = st.last_zbar;
  // STE forward is exactly 1: z = zbar + r.
  return decoder->step(zbar.to(r.scalar_type()) + r, st.dec).narrow(-1, 0, d_prev);
}

}  // namespace dynarch

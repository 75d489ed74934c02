#include "model/stack/isotropic.h"

#include <torch/torch.h>

#include "core/error.h"
#include "model/layers/attention.h"
#include "model/layers/gru.h"
#include "model/layers/mamba2.h"

namespace dynarch {

StackOptions stack_options(const ModelConfig& c, int s) {
  StackOptions o{c.d_model[s], c.mlp_width(s), c.ssm, c.attn.num_heads[s], c.attn.rotary_emb_dim[s],
                 c.attn.window_size[s]};
  o.residual = c.residual.at(s);
  return o;
}

namespace {
at::ScalarType stream_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}
}  // namespace

Block::Block(const LayerSpec& spec, const StackOptions& o, int sublayer) {
  if (spec.mixer != 'f') {
    norm1 = register_module("norm1", std::make_shared<RMSNorm>(o.d_model));
    if (spec.mixer == 'm')
      mixer = std::make_shared<Mamba2>(o.d_model, o.ssm.d_state, o.ssm.d_conv, o.ssm.expand, o.ssm.headdim,
                                       o.ssm.chunk_size);
    else if (spec.mixer == 'g')
      mixer = std::make_shared<GRUMixer>(o.d_model);
    else
      mixer = std::make_shared<Attention>(o.d_model, o.num_heads, o.rotary_dim, o.window);
    register_module("mixer", mixer);
    if ((hc_mixer = make_connection(o.residual, o.d_model, sublayer++))) register_module("hc_mixer", hc_mixer);
  }
  if (spec.mlp) {
    norm2 = register_module("norm2", std::make_shared<RMSNorm>(o.d_model));
    mlp = register_module("mlp", std::make_shared<SwiGLU>(o.d_model, o.d_intermediate));
    if ((hc_mlp = make_connection(o.residual, o.d_model, sublayer))) register_module("hc_mlp", hc_mlp);
  }
}

namespace {
// One sub-layer: the plain residual r + F(r), or the HC/mHC stream update
// (possibly left pending for the next sub-layer).
template <class F>
Streams sublayer(const std::shared_ptr<StreamConnection>& conn, const Streams& r, F&& f) {
  if (conn) return conn->forward(r, f);
  return Streams{r.X + f(r.X).to(stream_type(r.X))};
}
}  // namespace

Streams Block::forward(const Streams& r, LayerCache* cache, int64_t pos0, const at::Tensor& lengths,
                       const PackedSeqs* packed) {
  auto h = r;
  if (mixer)
    h = sublayer(hc_mixer, h, [&](const at::Tensor& u) {
      return packed ? mixer->forward_packed(norm1->forward(u), *packed)
                    : mixer->forward(norm1->forward(u), cache, pos0, lengths);
    });
  if (mlp) h = sublayer(hc_mlp, h, [&](const at::Tensor& u) { return mlp->forward(norm2->forward(u)); });
  return h;
}

Streams Block::step(const Streams& r, LayerCache& cache, const std::vector<int64_t>& pos) {
  auto h = r;
  at::Tensor fused = mixer && !hc_mixer ? mixer->fused_residual_step(r.X, norm1->weight, norm1->eps(), cache, pos)
                                        : at::Tensor();
  if (fused.defined()) h = Streams{fused};
  else if (mixer) h = sublayer(hc_mixer, h, [&](const at::Tensor& u) { return mixer->step(norm1->forward(u), cache, pos); });
  if (mlp) h = sublayer(hc_mlp, h, [&](const at::Tensor& u) { return mlp->forward(norm2->forward(u)); });
  return h;
}

Isotropic::Isotropic(const std::vector<LayerSpec>& layout, const StackOptions& o) : residual(o.residual) {
  layers = register_module("layers", torch::nn::ModuleList());
  int sub = 0;
  for (auto& spec : layout) {
    blocks.push_back(std::make_shared<Block>(spec, o, sub));
    layers->push_back(blocks.back());
    sub += (spec.mixer != 'f') + spec.mlp;
  }
  if (residual.streams()) hc_ends = register_module("hc_ends", std::make_shared<StreamEnds>(residual, o.d_model));
  if (o.final_norm) rmsnorm = register_module("rmsnorm", std::make_shared<RMSNorm>(o.d_model));
  height = layout_height(layout);
}

StackState Isotropic::new_state(int64_t batch, at::ScalarType dtype) const {
  StackState s;
  for (auto& b : blocks) s.layers.push_back(b->mixer ? b->mixer->new_cache(batch, dtype) : LayerCache{});
  s.pos.assign(batch, 0);
  return s;
}

at::Tensor Isotropic::forward(const at::Tensor& x, StackState* state, const at::Tensor& lengths) {
  int64_t pos0 = 0;
  if (state) {
    if (state->layers.size() != blocks.size()) *state = new_state(x.size(0), x.scalar_type());
    pos0 = state->pos.at(0);
    for (auto p : state->pos)
      check(p == pos0, "Isotropic::forward: continuing a batch whose rows are at different positions");
  }
  auto y = run_blocks(x, state, pos0, state ? lengths : at::Tensor(), nullptr);
  if (state) {
    for (size_t b = 0; b < state->pos.size(); ++b)
      state->pos[b] += lengths.defined() ? lengths[b].item<int64_t>() : x.size(1);
  }
  return y;
}

at::Tensor Isotropic::forward_packed(const at::Tensor& x, const PackedSeqs& seqs) {
  return run_blocks(x, nullptr, 0, {}, &seqs);
}

at::Tensor Isotropic::run_blocks(const at::Tensor& x, StackState* state, int64_t pos0, const at::Tensor& lengths,
                                 const PackedSeqs* packed) {
  auto r = x.to(stream_type(x));
  if (hc_ends) r = hc_ends->expand(r);
  Streams S{r};
  for (size_t i = 0; i < blocks.size(); ++i)
    S = blocks[i]->forward(S, state ? &state->layers[i] : nullptr, pos0, lengths, packed);
  r = hc_ends ? hc_ends->collapse(S) : settle(S);
  return rmsnorm ? rmsnorm->forward(r) : r;
}

void Isotropic::init_linears(double n_res, double sigma) {
  torch::NoGradGuard ng;
  for (auto& kv : named_parameters()) {
    const std::string& name = kv.key();
    auto& p = kv.value();
    if (p.dim() != 2) continue;  // Linear weights only (conv1d is 3-D)
    if (name.find(".gru.") != std::string::npos) continue;  // torch::nn::GRU keeps its own init
    if (residual_param(name)) continue;                       // HC/mHC presets (mhc.md §6)
    bool out = name.find("out_proj") != std::string::npos || name.find("fc2") != std::string::npos;
    p.normal_(0.0, out ? residual.out_std_scale * sigma / std::sqrt(n_res) : sigma);
  }
}

at::Tensor Isotropic::step(const at::Tensor& x, StackState& state) {
  auto r = x.to(stream_type(x));
  if (hc_ends) r = hc_ends->expand(r);
  Streams S{r};
  for (size_t i = 0; i < blocks.size(); ++i) S = blocks[i]->step(S, state.layers[i], state.pos);
  r = hc_ends ? hc_ends->collapse(S) : settle(S);
  for (auto& p : state.pos) p += 1;
  return rmsnorm ? rmsnorm->forward(r) : r;
}

}  // namespace dynarch

// One H-Net stage (hnet.md §1), recursive: an outer stage is encoder ->
// routing -> downsample -> inner stage -> dechunk -> + residual -> decoder; the
// innermost stage is the main network. Stage 0 with an innermost layout is a
// plain isotropic model. Names follow the official state dict.
#pragma once
#include <torch/nn/modules/linear.h>

#include "core/forward_context.h"
#include "model/config/config.h"
#include "model/stack/isotropic.h"
#include "model/hnet/chunk.h"
#include "model/hnet/ratio_loss.h"
#include "model/hnet/routing_module.h"
#include "model/layers/state.h"

namespace dynarch {

// What an outer stage exposes for the ratio loss, metrics and chunk views.
struct StageTrace {
  at::Tensor p, b, mask;  // (B, L) at that stage's resolution; mask undefined = all valid
};
// While one is alive, every outer stage's forward appends its trace, outermost
// first (the stage_traces sink of core/forward_context.h).
class StageRecorder {
 public:
  std::vector<StageTrace> traces;

 private:
  ForwardScope scope_{[this](ForwardContext& c) { c.stage_traces = &traces; }};
};

class HNetStage : public torch::nn::Module {
 public:
  HNetStage(const ModelConfig& c, int stage, int64_t d_prev);
  // x: (B, L, D_{s-1}); lengths: (B) valid rows (undefined = all). With a state,
  // prefills/continues it. A StageRecorder receives the traces of this
  // and the inner stages.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& lengths, ModelState* st);
  // One byte (or chunk) per row: x (B, D_{s-1}).
  at::Tensor step(const at::Tensor& x, ModelState& st);
  ModelState new_state(int64_t batch, at::ScalarType dtype) const;
  // hnet.md §8: Linear init with the accumulated n_res; routing, residual_proj
  // and pad keep their own init.
  void init_weights(double n_res_outer);
  // Stage index of every parameter name relative to this module.
  int stage_of(const std::string& name) const;

  int stage;
  bool innermost;
  int64_t d_model, d_prev;
  std::shared_ptr<Isotropic> encoder, decoder;
  std::shared_ptr<Stack> main_stack;  // innermost: isotropic stack or H-Model (make_main_network)
  std::shared_ptr<RoutingModule> routing_module;
  torch::nn::Linear residual_proj{nullptr};
  std::shared_ptr<HNetStage> inner;
  at::Tensor pad_dimension;  // (D_s - D_{s-1}) or undefined

 private:
  at::Tensor pad(const at::Tensor& x) const;
};

}  // namespace dynarch

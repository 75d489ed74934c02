// libFuzzer target: the model config parser (model/config: H-Net layout, ssm/attn,
// "residual", "hmodel", "task"), fed whole config files. An accepted config
// must be consistent (one entry per stage everywhere) and survive
// to_json -> from_json unchanged, since checkpoints store it that way.
#include <cmath>

#include "core/error.h"
#include "fuzz_util.h"
#include "model/config/config.h"
#include "model/config/stage_defaults.h"

using dynarch::ModelConfig;

namespace {

void check_consistent(const ModelConfig& c) {
  const size_t S1 = c.stages.size();
  if (S1 < 1 || !c.stages.back().innermost)
    fuzz::violated("no innermost stage");
  if (c.d_model.size() != S1 || c.d_intermediate.size() != S1 || c.residual.size() != S1 ||
      c.attn.num_heads.size() != S1 || c.attn.rotary_emb_dim.size() != S1 || c.attn.window_size.size() != S1)
    fuzz::violated("a per-stage field does not have one entry per stage");
  for (int s = 0; s < (int)S1; ++s)
    if (c.mlp_width(s) < 0 || c.mlp_width(s) % 128 != 0) fuzz::violated("mlp_width not a multiple of 128");
  if (c.task.classify() && (int)c.task.labels.size() != c.task.num_classes) fuzz::violated("labels != num_classes");
  if (c.hmodel) {
    for (int j = 1; j <= c.hmodel->L; ++j) c.hmodel->node_spec(j);
    for (int64_t step : {-1L, 0L, 1L, c.hmodel->alpha_steps / 2, c.hmodel->alpha_steps})
      if (!(c.hmodel->alpha_at(step) > 0)) fuzz::violated("alpha schedule gives a value that is not > 0");
  }
  // The per-stage LR multipliers of the default targets (what a fresh run uses).
  if (c.num_stages() > 0)
    for (double m : dynarch::stage_lr_multipliers(c, dynarch::default_ratio_targets(c.num_stages())))
      if (!(m > 0) || !std::isfinite(m)) fuzz::violated("stage LR multiplier not finite and > 0");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Scratch file("config");
  fuzz::write_file(file.path, data, size);
  ModelConfig c;
  try {
    c = ModelConfig::from_file(file.path);
  } catch (const dynarch::UserError& e) {
    fuzz::rejected(e);
    return 0;
  }
  check_consistent(c);
  const auto j = c.to_json();
  ModelConfig back;
  try {
    back = ModelConfig::from_json(j, "round trip");
  } catch (const dynarch::UserError& e) {
    fuzz::violated(std::string("an accepted config does not load back from to_json: ") + e.what());
  }
  if (back.to_json() != j) fuzz::violated("to_json -> from_json -> to_json changed the config");
  return 0;
}

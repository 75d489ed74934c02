// libFuzzer target: the training-options file (checkpoint/train_options.json, also
// `train --options FILE`), read as train/trainer.cpp resumes it: read, JSON-parse,
// TrainOptions::from_json, validate, then the per-stage values for models with
// 0, 1 and 2 chunking stages. Options that pass must survive to_json -> from_json.
#include <cmath>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/atomic_file.h"
#include "model/config/config.h"
#include "train/options.h"

using dynarch::TrainOptions;
using dynarch::ModelConfig;
using nlohmann::json;

namespace {

const std::vector<ModelConfig>& models() {
  static const std::vector<ModelConfig> m = [] {
    std::vector<ModelConfig> v;
    for (const char* c : {R"({"arch_layout": ["T2"], "d_model": [32], "d_intermediate": [64], "attn_cfg": {"num_heads": [4]}})",
                          R"({"arch_layout": ["m1", ["t1"], "m1"], "d_model": [32, 48], "ssm_cfg": {"headdim": 16},
                              "attn_cfg": {"num_heads": [2, 4]}})",
                          R"({"arch_layout": ["m1", ["m1", ["t1"], "m1"], "m1"], "d_model": [32, 48, 64], "ssm_cfg": {"headdim": 16},
                              "attn_cfg": {"num_heads": [2, 2, 4]}})"})
      v.push_back(ModelConfig::from_json(json::parse(c), "fuzz model"));
    return v;
  }();
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Scratch file("options");
  fuzz::write_file(file.path, data, size);
  TrainOptions o;
  try {
    json j;
    try {
      j = json::parse(dynarch::io::read_file(file.path));
    } catch (const json::exception&) {
      return 0;  // not JSON, or a number out of range: the trainer says "cannot resume from DIR: ..."
    }
    o = TrainOptions::from_json(j, file.path);
    o.validate();
  } catch (const dynarch::UserError& e) {
    fuzz::rejected(e);
    return 0;
  }
  for (const auto& m : models()) {
    std::vector<double> t, l;
    try {
      t = o.targets_for(m);
      l = o.lr_mults_for(m);
    } catch (const dynarch::UserError&) {
      continue;  // e.g. two ratio targets for a one-stage model
    }
    if ((int)t.size() != m.num_stages() || (int)l.size() != m.num_stages() + 1)
      fuzz::violated("per-stage values do not match the model's stages");
  }
  TrainOptions back = TrainOptions::from_json(o.to_json(), "round trip");
  if (back.to_json() != o.to_json()) fuzz::violated("to_json -> from_json changed the options");
  return 0;
}

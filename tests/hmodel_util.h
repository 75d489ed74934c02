// Helpers shared by the H-Model tests.
#pragma once
#include <torch/torch.h>

#include <string>

#include "core/error.h"
#include "model/hmodel/hmodel.h"

namespace dynarch::hmtest {

inline double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

inline nlohmann::json hm_config(const std::string& layout, const nlohmann::json& hmodel) {
  auto j = nlohmann::json::parse(R"({"arch_layout": [")" + layout + R"("], "d_model": [32], "d_intermediate": [64],
    "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 8},
    "attn_cfg": {"num_heads": [4], "rotary_emb_dim": [4], "window_size": [-1]}})");
  j["hmodel"] = hmodel;
  return j;
}
// A 1-stage H-Net whose main network (`inner`, width d_inner) is an H-Model.
inline nlohmann::json hnet_hm_config(const std::string& inner, int d_inner, const nlohmann::json& hmodel) {
  auto j = nlohmann::json::parse(R"({"arch_layout": ["m1", ["x"], "m1"], "d_model": [32, 0], "d_intermediate": [0, 128],
      "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 16},
      "attn_cfg": {"num_heads": [2, 4], "rotary_emb_dim": [8, 8], "window_size": [-1, -1]}})");
  j["arch_layout"][1][0] = inner;
  j["d_model"][1] = d_inner;
  j["hmodel"] = hmodel;
  return j;
}
inline nlohmann::json hm_lm_config(const std::string& layout, const nlohmann::json& hmodel) {
  return hm_config(layout, hmodel);
}

inline std::string config_error(const nlohmann::json& j) {
  try {
    ModelConfig::from_json(j, "cfg.json");
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// Heads with larger random weights: input-dependent, non-uniform routing.
inline void randomise_heads(HModel& m) {
  torch::NoGradGuard ng;
  for (auto& kv : m.named_parameters())
    if (kv.key().find("head.proj") != std::string::npos) kv.value().normal_(0.0, kv.key().find("bias") != std::string::npos ? 1.0 : 0.3);
}

// An HModel of the stage-0 layout in fp64, initialised as in a ByteLM.
inline std::shared_ptr<HModel> make_hmodel(const std::string& layout, const nlohmann::json& h, bool randomise = false) {
  auto c = ModelConfig::from_json(hm_config(layout, h), "t");
  auto m = std::make_shared<HModel>(c, 0, stack_options(c, 0));
  m->init_linears(m->height);
  if (randomise) randomise_heads(*m);
  m->to(at::kDouble);
  return m;
}

// Fixed one-hot chain IN -> 1 -> ... : step r sends sender r to target r (T = L ends at OUT).
inline std::vector<at::Tensor> chain_routing(int L, int T) {
  std::vector<at::Tensor> out;
  for (int r = 0; r <= T; ++r) {
    auto C = torch::zeros({L + 1, L + 1}, at::kDouble);
    if (r <= L) C[r][r] = 1.0;
    out.push_back(C);
  }
  return out;
}

// The plain stack of the model's node layers, then the exit norm.
inline at::Tensor plain_stack(HModel& m, const at::Tensor& x) {
  auto r = x;
  for (auto& n : m.nodes) r = n->layer->forward(r);
  return m.rmsnorm->forward(r);
}

}  // namespace dynarch::hmtest

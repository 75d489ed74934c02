// Whole-model tests: config validation, init rules, names, step decode vs full
// forward, gradients of the SSD scan.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "gradcheck.h"
#include "model/lm.h"
#include "model/layers/mamba2.h"

using namespace dynarch;
using nlohmann::json;

static json tiny_config(const std::string& layout = "T1m1M1") {
  return json::parse(R"({"arch_layout": [")" + layout + R"("], "d_model": [32], "d_intermediate": [64],
    "vocab_size": 256, "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 8},
    "attn_cfg": {"num_heads": [4], "rotary_emb_dim": [4], "window_size": [-1]}, "tie_embeddings": false})");
}

static std::string config_error(json j) {
  try {
    ModelConfig::from_json(j, "cfg.json");
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, LayoutGrammar) {
  auto v = parse_layout_string("T1m4", "x");
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0], (LayerSpec{'t', true}));
  EXPECT_EQ(v[4], (LayerSpec{'m', false}));
  EXPECT_EQ(layout_height(v), 6);
  // Extensions: f = SwiGLU only (1 sub-layer), g/G = GRU without/with MLP.
  auto e = parse_layout_string("f1g1G1", "x");
  EXPECT_EQ(e[0], (LayerSpec{'f', true}));
  EXPECT_EQ(e[1], (LayerSpec{'g', false}));
  EXPECT_EQ(e[2], (LayerSpec{'g', true}));
  EXPECT_EQ(layout_height(e), 4);
  for (auto bad : {"", "T", "x2", "T2 m2", "m0", "2m", "T2q1", "F1"})
    EXPECT_THROW(parse_layout_string(bad, "x"), UserError) << bad;
}

TEST(Config, OfficialConfigAcceptedAsIs) {
  auto j = json::parse(R"({"arch_layout": ["m4", ["T22"], "m4"], "d_model": [1024, 1536],
    "d_intermediate": [0, 4096], "vocab_size": 256,
    "ssm_cfg": {"chunk_size": 256, "d_conv": 4, "d_state": 128, "expand": 2},
    "attn_cfg": {"num_heads": [16, 16], "rotary_emb_dim": [32, 48], "window_size": [1023, -1]},
    "tie_embeddings": false})");
  auto c = ModelConfig::from_json(j, "hnet_1stage_L.json");
  EXPECT_EQ(c.num_stages(), 1);
  EXPECT_EQ(c.stages[0].encoder.size(), 4u);
  EXPECT_EQ(c.stages[1].main.size(), 22u);
  EXPECT_EQ(c.mlp_width(1), 4096);
  // Round trip through to_json.
  auto c2 = ModelConfig::from_json(c.to_json(), "rt");
  EXPECT_EQ(c2.to_json(), c.to_json());
}

TEST(Config, BadConfigsNameTheField) {
  auto j = tiny_config();
  j["bogus"] = 1;
  EXPECT_NE(config_error(j).find("unknown field \"bogus\""), std::string::npos);
  j = tiny_config();
  j["ssm_cfg"]["headdim"] = 7;  // expand*d = 64 not divisible by 7
  EXPECT_NE(config_error(j).find("headdim"), std::string::npos);
  j = tiny_config();
  j["attn_cfg"]["num_heads"] = {5};
  EXPECT_NE(config_error(j).find("num_heads"), std::string::npos);
  j = tiny_config();
  j["attn_cfg"]["rotary_emb_dim"] = {3};
  EXPECT_NE(config_error(j).find("rotary_emb_dim"), std::string::npos);
  j = tiny_config();
  j["d_model"] = "wide";
  EXPECT_NE(config_error(j).find("d_model"), std::string::npos);
  j = tiny_config();
  j["d_model"] = {32, 64};
  EXPECT_NE(config_error(j).find("d_model has 2 entries"), std::string::npos);
  j = tiny_config();
  j["arch_layout"] = {"m2", {"T2"}, "m2"};
  j["d_model"] = {64, 32};
  j["d_intermediate"] = {0, 64};
  j["attn_cfg"]["num_heads"] = {4, 4};
  j["attn_cfg"]["rotary_emb_dim"] = {4, 4};
  j["attn_cfg"]["window_size"] = {-1, -1};
  EXPECT_NE(config_error(j).find("must not decrease"), std::string::npos);
  j = tiny_config("T2");
  j["d_intermediate"] = {0};
  EXPECT_NE(config_error(j).find("d_intermediate"), std::string::npos);
  j = tiny_config("Q2");
  EXPECT_NE(config_error(j).find("arch_layout"), std::string::npos);
  EXPECT_EQ(config_error(tiny_config()), "");
}

TEST(ByteLM, OfficialParameterNames) {
  ByteLM m(ModelConfig::from_json(tiny_config("T1m1"), "t"));
  auto p = m.named_parameters();
  for (auto name : {"embeddings.weight", "lm_head.weight", "backbone.main_network.layers.0.norm1.weight",
                    "backbone.main_network.layers.0.mixer.Wqkv.weight", "backbone.main_network.layers.0.mixer.out_proj.weight",
                    "backbone.main_network.layers.0.norm2.weight", "backbone.main_network.layers.0.mlp.fc1.weight",
                    "backbone.main_network.layers.0.mlp.fc2.weight", "backbone.main_network.layers.1.mixer.in_proj.weight",
                    "backbone.main_network.layers.1.mixer.conv1d.weight", "backbone.main_network.layers.1.mixer.conv1d.bias",
                    "backbone.main_network.layers.1.mixer.dt_bias", "backbone.main_network.layers.1.mixer.A_log",
                    "backbone.main_network.layers.1.mixer.D", "backbone.main_network.layers.1.mixer.norm.weight",
                    "backbone.main_network.layers.1.mixer.out_proj.weight", "backbone.main_network.rmsnorm.weight"})
    EXPECT_TRUE(p.contains(name)) << name;
  EXPECT_FALSE(p.contains("backbone.main_network.layers.1.norm2.weight"));  // m = no MLP
  EXPECT_EQ(p["backbone.main_network.layers.0.mlp.fc1.weight"].size(0), 2 * 128);  // 64 rounded up to 128
}

TEST(ByteLM, InitRules) {
  torch::manual_seed(0);
  auto j = tiny_config("T4");
  j["d_model"] = {256};
  j["attn_cfg"]["num_heads"] = {4};
  ByteLM m(ModelConfig::from_json(j, "t"));
  auto p = m.named_parameters();
  EXPECT_NEAR(p["embeddings.weight"].std().item<double>(), 1.0, 0.02);
  EXPECT_NEAR(p["lm_head.weight"].std().item<double>(), 0.02, 0.002);
  EXPECT_NEAR(p["backbone.main_network.layers.0.mixer.Wqkv.weight"].std().item<double>(), 0.02, 0.001);
  const double n_res = 8;  // 4 T layers, height 2 each
  EXPECT_NEAR(p["backbone.main_network.layers.0.mixer.out_proj.weight"].std().item<double>(), 0.02 / std::sqrt(n_res), 0.001);
  EXPECT_NEAR(p["backbone.main_network.layers.2.mlp.fc2.weight"].std().item<double>(), 0.02 / std::sqrt(n_res), 0.001);
  EXPECT_EQ(p["backbone.main_network.rmsnorm.weight"].sum().item<double>(), 256.0);
}

TEST(ByteLM, NoWeightDecayOnNormsAndBiases) {
  ByteLM m(ModelConfig::from_json(tiny_config("M1"), "t"));
  for (auto& pi : m.param_infos()) {
    bool expect_decay = pi.name.find("norm") == std::string::npos && pi.name.find(".bias") == std::string::npos;
    EXPECT_EQ(pi.weight_decay, expect_decay) << pi.name;
  }
}

TEST(ByteLM, StepDecodeEqualsFullForward) {
  torch::manual_seed(2);
  for (auto layout : {"T2", "m2", "T1m1M1t1", "f1g1G1T1"}) {
    ByteLM m(ModelConfig::from_json(tiny_config(layout), "t"));
    m.eval();
    torch::NoGradGuard ng;
    const int64_t B = 3, L = 12;
    auto ids = torch::randint(0, 256, {B, L}, at::kLong);
    auto full = m.forward(ids);
    // prefill 5 bytes, then step the rest
    auto st = m.new_state(B);
    auto pre = m.forward(ids.narrow(1, 0, 5), &st);
    EXPECT_LT((pre - full.narrow(1, 0, 5)).abs().max().item<double>(), 1e-5) << layout;
    for (int64_t t = 5; t < L; ++t) {
      auto lg = m.step(ids.select(1, t), st);
      EXPECT_LT((lg - full.select(1, t)).abs().max().item<double>(), 1e-5) << layout << " t=" << t;
    }
  }
}

TEST(Gradcheck, SsdChunkedScanFp64) {
  torch::manual_seed(4);
  const int64_t B = 1, L = 6, H = 2, P = 2, N = 3;
  auto f = [&](const std::vector<at::Tensor>& in) {
    auto dt = torch::softplus(in[1]);
    return ssd_chunked(in[0], dt, -torch::exp(in[2]), in[3], in[4], 4, in[5]).y;
  };
  double err = gradtest::gradcheck_max_error(
      f, {torch::randn({B, L, H, P}), torch::randn({B, L, H}), torch::randn({H}) * 0.5, torch::randn({B, L, N}),
          torch::randn({B, L, N}), torch::randn({B, H, P, N})});
  EXPECT_LT(err, 1e-6);
}

TEST(Gradcheck, DetectsAWrongGradient) {
  // The checker itself must fail on a function whose backward is wrong.
  struct Bad : torch::autograd::Function<Bad> {
    static at::Tensor forward(torch::autograd::AutogradContext*, at::Tensor x) { return x * x; }
    static torch::autograd::tensor_list backward(torch::autograd::AutogradContext*, torch::autograd::tensor_list g) {
      return {g[0] * 3.0};
    }
  };
  double err = gradtest::gradcheck_max_error([](const std::vector<at::Tensor>& in) { return Bad::apply(in[0]); },
                                            {torch::randn({4})});
  EXPECT_GT(err, 0.1);
}

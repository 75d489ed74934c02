// H-Net: routing, dechunk (EMA), STE, ratio loss, stages, decode, batching.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "gradcheck.h"
#include "model/lm.h"
#include "kernels/cpu/chunk/ema_scan.h"
#include "model/hnet/chunk.h"
#include "model/hnet/ratio_loss.h"
#include "model/hnet/routing_module.h"
#include "train/trainer.h"

using namespace dynarch;
using nlohmann::json;

namespace {

double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

json hnet_config(int stages) {
  if (stages == 1)
    return json::parse(R"({"arch_layout": ["m2", ["T2"], "m2"], "d_model": [32, 48], "d_intermediate": [0, 128],
      "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 16},
      "attn_cfg": {"num_heads": [2, 4], "rotary_emb_dim": [8, 8], "window_size": [-1, -1]}})");
  return json::parse(R"({"arch_layout": ["m1", ["T1m1", ["T2"], "m1T1"], "m1"], "d_model": [32, 32, 48],
    "d_intermediate": [0, 64, 128],
    "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 16},
    "attn_cfg": {"num_heads": [2, 2, 4], "rotary_emb_dim": [8, 8, 8], "window_size": [-1, 3, -1]}})");
}

// Routing weights random enough that boundaries vary (identity init makes
// p depend only on the encoder output, which is fine too).
std::shared_ptr<ByteLM> make_hnet(int stages, uint64_t seed) {
  torch::manual_seed(seed);
  auto m = std::make_shared<ByteLM>(ModelConfig::from_json(hnet_config(stages), "t"));
  torch::NoGradGuard ng;
  for (auto& kv : m->named_parameters())
    if (kv.key().find("residual_proj.weight") != std::string::npos) kv.value().normal_(0, 0.05);
  m->eval();
  return m;
}

}  // namespace

TEST(Routing, SpecCaseA) {
  RoutingModule r(2);
  r.to(torch::kDouble);
  auto x = torch::tensor({1.0, 0.0, 1.0, 0.0, 0.0, 1.0, -1.0, -1.0, -2.0, -2.0}, torch::kDouble).view({1, 5, 2});
  auto o = r.forward(x);
  std::vector<double> p{1, 0, 0.5, 0.853553, 0}, c{1, 1, 0.5, 0.853553, 1};
  std::vector<bool> b{true, false, false, true, false};
  for (int t = 0; t < 5; ++t) {
    EXPECT_NEAR(o.p[0][t].item<double>(), p[t], 1e-6) << t;
    EXPECT_NEAR(o.c[0][t].item<double>(), c[t], 1e-6) << t;
    EXPECT_EQ(o.b[0][t].item<bool>(), b[t]) << t;  // p = 0.5 is not a boundary
  }
}

TEST(Routing, SpecCaseBOrientation) {
  RoutingModule r(2);
  r.to(torch::kDouble);
  {
    torch::NoGradGuard ng;
    r.q_proj_layer->weight.copy_(torch::tensor({{1.0, 2.0}, {0.0, 1.0}}));  // W_q on the previous vector
  }
  auto x = torch::tensor({1.0, 0.0, 0.0, 1.0, 1.0, 1.0}, torch::kDouble).view({1, 3, 2});
  auto o = r.forward(x);
  EXPECT_NEAR(o.p[0][0].item<double>(), 1.0, 1e-9);
  EXPECT_NEAR(o.p[0][1].item<double>(), 0.5, 1e-6);
  EXPECT_NEAR(o.p[0][2].item<double>(), 0.025658, 1e-6);
  EXPECT_NEAR(o.c[0][2].item<double>(), 0.974342, 1e-6);
  EXPECT_FALSE(o.b[0][1].item<bool>());
  // Step form agrees, and continuing from `prev` equals the full sequence.
  auto p2 = r.step_p(x[0][2].unsqueeze(0), x[0][1].unsqueeze(0), torch::ones({1}, torch::kBool));
  EXPECT_NEAR(p2.item<double>(), 0.025658, 1e-6);
  auto cont = r.forward(x.narrow(1, 1, 2), {}, x.select(1, 0));
  EXPECT_LT(maxdiff(cont.p, o.p.narrow(1, 1, 2)), 1e-12);
}

TEST(Routing, MaskAndDownsample) {
  auto x = torch::arange(12, torch::kFloat).view({2, 3, 2});
  auto b = torch::tensor({1, 0, 1, 1, 0, 0}, torch::kBool).view({2, 3});
  auto c = downsample(x, b);
  ASSERT_EQ(c.x.size(1), 2);
  EXPECT_TRUE(c.x[0][0].equal(x[0][0]));
  EXPECT_TRUE(c.x[0][1].equal(x[0][2]));
  EXPECT_TRUE(c.x[1][0].equal(x[1][0]));
  EXPECT_TRUE(c.mask.equal(torch::tensor({1, 1, 1, 0}, torch::kBool).view({2, 2})));
}

TEST(Dechunk, SpecVectorForwardAndBackward) {
  auto zhat = torch::tensor({1.0, 0.0, 0.0, 1.0, 2.0, 2.0}, torch::kDouble).view({1, 3, 2}).requires_grad_(true);
  auto P = torch::tensor({0.9999, 0.6, 0.8}, torch::kDouble).view({1, 3}).requires_grad_(true);
  auto zbar = ema_scan(zhat, P);
  std::vector<double> want{0.9999, 0, 0.39996, 0.6, 1.679992, 1.72};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(zbar.flatten()[i].item<double>(), want[i], 1e-9);
  EXPECT_LT(maxdiff(zbar, ema_scan_reference(zhat, P)), 1e-12);
  // Upsampling with b = 1,0,1,0,0,1: k = 0,0,1,1,1,2; loss = sum of all z~.
  auto b = torch::tensor({1, 0, 1, 0, 0, 1}, torch::kBool).view({1, 6});
  auto p_chunks = torch::tensor({1.0, 0.6, 0.8}, torch::kDouble).view({1, 3}).requires_grad_(true);
  auto zt = dechunk(zhat, p_chunks, b);
  EXPECT_LT(maxdiff(zt[0][1], zbar[0][0]), 1e-12);
  EXPECT_LT(maxdiff(zt[0][4], zbar[0][1]), 1e-12);
  auto g = torch::autograd::grad({zt.sum()}, {zhat, p_chunks});
  std::vector<double> gz{3.279672, 1.92, 0.8};
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(g[0][0][j][0].item<double>(), gz[j], 1e-6) << j;
  EXPECT_NEAR(g[1][0][0].item<double>(), 0.0, 1e-12);  // p = 1 clamped: gradient stopped
  EXPECT_NEAR(g[1][0][1].item<double>(), 0.00032, 1e-8);
  EXPECT_NEAR(g[1][0][2].item<double>(), 3.00004, 1e-6);
  auto gP = torch::autograd::grad({ema_scan(zhat, P).index_select(1, torch::tensor({0L, 0L, 1L, 1L, 1L, 2L})).sum()}, {P});
  EXPECT_NEAR(gP[0][0][0].item<double>(), 3.28, 1e-6);
}

TEST(Gradcheck, EmaScanFp64) {
  torch::manual_seed(5);
  auto f = [](const std::vector<at::Tensor>& in) { return ema_scan(in[0], torch::sigmoid(in[1]), in[2]); };
  EXPECT_LT(gradtest::gradcheck_max_error(f, {torch::randn({2, 5, 3}), torch::randn({2, 5}), torch::randn({2, 3})}),
            1e-7);
  auto g = [](const std::vector<at::Tensor>& in) { return ema_scan(in[0], torch::sigmoid(in[1])); };
  EXPECT_LT(gradtest::gradcheck_max_error(g, {torch::randn({1, 4, 2}), torch::randn({1, 4})}), 1e-7);
}

TEST(Gradcheck, SteFp64PassesGradientForwardIsOne) {
  auto c = torch::rand({5}, torch::kDouble).requires_grad_(true);
  auto s = ste_ones(c);
  EXPECT_TRUE(s.equal(torch::ones_like(s)));
  auto z = torch::randn({5}, torch::kDouble);
  auto g = torch::autograd::grad({(s * z).sum()}, {c})[0];
  EXPECT_TRUE(g.equal(z));
  auto f = [](const std::vector<at::Tensor>& in) { return ste_ones(in[0]) * in[0] * 0 + ste_ones(in[0]); };
  // numeric derivative of a constant is 0 while STE reports 1: the checker must see the mismatch
  EXPECT_GT(gradtest::gradcheck_max_error(f, {torch::rand({3})}), 0.5);
}

TEST(RatioLoss, SpecValues) {
  auto make = [](double F, double G, int n) {
    auto b = torch::zeros({1, n}, torch::kBool);
    for (int i = 0; i < (int)std::round(F * n); ++i) b[0][i] = true;
    auto p = torch::full({1, n}, G, torch::kDouble);
    return std::pair{p, b};
  };
  struct Case { double F, G, want; } cases[] = {{1.0 / 6, 1.0 / 6, 1.0}, {0.25, 0.2, 1.02}, {0.2, 0.3, 1.032},
                                                  {1, 1, 6}, {0, 0, 1.2}};
  for (auto c : cases) {
    auto [p, b] = make(c.F, c.G, 60);
    EXPECT_NEAR(ratio_loss(p, b, {}, 6.0).loss.item<double>(), c.want, 1e-9) << c.F << " " << c.G;
  }
  // Padded positions are ignored.
  auto p = torch::tensor({{0.2, 0.2, 0.9}}, torch::kDouble);
  auto b = torch::tensor({{true, false, true}});
  auto r = ratio_loss(p, b, torch::tensor({{true, true, false}}), 6.0);
  EXPECT_NEAR(r.F.item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(r.G.item<double>(), 0.2, 1e-12);
}

TEST(HNet, OfficialNamesAndShapes) {
  auto m1 = make_hnet(1, 0);
  auto p = m1->named_parameters();
  for (auto n : {"backbone.encoder.layers.0.mixer.in_proj.weight", "backbone.encoder.rmsnorm.weight",
                 "backbone.routing_module.q_proj_layer.weight", "backbone.routing_module.k_proj_layer.weight",
                 "backbone.residual_proj.weight", "backbone.residual_proj.bias", "backbone.main_network.pad_dimension",
                 "backbone.main_network.main_network.layers.1.mixer.Wqkv.weight",
                 "backbone.main_network.main_network.layers.1.mlp.fc2.weight",
                 "backbone.main_network.main_network.rmsnorm.weight", "backbone.decoder.layers.1.norm1.weight"})
    EXPECT_TRUE(p.contains(n)) << n;
  EXPECT_EQ(p["backbone.main_network.pad_dimension"].size(0), 16);
  EXPECT_EQ(p["backbone.residual_proj.weight"].abs().sum().item<double>(), 0.0 + p["backbone.residual_proj.weight"].abs().sum().item<double>());
  auto m2 = make_hnet(2, 0);
  auto p2 = m2->named_parameters();
  for (auto n : {"backbone.main_network.encoder.layers.0.mixer.Wqkv.weight", "backbone.main_network.routing_module.q_proj_layer.weight",
                 "backbone.main_network.residual_proj.bias", "backbone.main_network.decoder.layers.1.mlp.fc1.weight",
                 "backbone.main_network.main_network.pad_dimension",
                 "backbone.main_network.main_network.main_network.layers.0.mixer.Wqkv.weight"})
    EXPECT_TRUE(p2.contains(n)) << n;
  EXPECT_FALSE(p2.contains("backbone.main_network.pad_dimension"));  // D_1 == D_0: no pad
}

TEST(HNet, InitRulesAccumulateNRes) {
  torch::manual_seed(0);
  auto j = json::parse(R"({"arch_layout": ["m4", ["T22"], "m4"], "d_model": [64, 96], "d_intermediate": [0, 256],
    "ssm_cfg": {"d_state": 8, "headdim": 16}, "attn_cfg": {"num_heads": [4, 4], "rotary_emb_dim": [8, 8]}})");
  ByteLM m(ModelConfig::from_json(j, "L-like"));
  auto p = m.named_parameters();
  auto stdv = [&](const std::string& n) { return p[n].std().item<double>(); };
  EXPECT_NEAR(stdv("backbone.encoder.layers.0.mixer.out_proj.weight"), 0.02 / std::sqrt(8.0), 0.0015);
  auto main_out = at::cat({p["backbone.main_network.main_network.layers.3.mixer.out_proj.weight"].flatten(),
                           p["backbone.main_network.main_network.layers.7.mlp.fc2.weight"].flatten()});
  EXPECT_NEAR(main_out.std().item<double>(), 0.02 / std::sqrt(52.0), 0.0005);
  EXPECT_TRUE(p["backbone.routing_module.q_proj_layer.weight"].equal(torch::eye(64)));
  EXPECT_EQ(p["backbone.residual_proj.weight"].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(p["backbone.main_network.pad_dimension"].abs().sum().item<double>(), 0.0);
}

TEST(HNet, LrMultipliersSpecTable) {
  auto mk = [](std::vector<int> d) {
    json j = hnet_config(d.size() - 1);
    j["d_model"] = d;
    return ModelConfig::from_json(j, "t");
  };
  auto l1 = stage_lr_multipliers(mk({1024, 1536}), {6});
  EXPECT_NEAR(l1[0], 2.627, 1e-3);
  EXPECT_NEAR(l1[1], 0.876, 1e-3);
  auto x2 = stage_lr_multipliers(mk({1024, 1536, 2048}), {3, 3});
  EXPECT_NEAR(x2[0], 3.033, 1e-3);
  EXPECT_NEAR(x2[1], 1.430, 1e-3);
  EXPECT_NEAR(x2[2], 0.715, 1e-3);
  // Parameters get their stage's multiplier; embeddings/lm_head stage 0's.
  auto m = make_hnet(2, 0);
  std::vector<double> mult{10, 20, 30};
  for (auto& pi : m->param_infos(mult)) {
    double want = pi.name.find("main_network.main_network.main_network.") != std::string::npos ? 30
                  : pi.name.find("main_network.main_network.pad_dimension") != std::string::npos ? 30
                  : pi.name.find("backbone.main_network.") != std::string::npos ? 20 : 10;
    EXPECT_EQ(pi.lr_mult, want) << pi.name;
  }
}

TEST(HNet, BadTrainingOptions) {
  TrainOptions o;
  o.data = "x";
  o.out = "y";
  o.ratio_targets = {1.0};
  EXPECT_THROW(o.validate(), UserError);
  o.ratio_targets = {3, 3};
  EXPECT_THROW(o.targets_for(ModelConfig::from_json(hnet_config(1), "t")), UserError);
  o.ratio_targets = {};
  o.lr_multipliers = {1.0};
  EXPECT_THROW(o.lr_mults_for(ModelConfig::from_json(hnet_config(1), "t")), UserError);
  auto j = hnet_config(1);
  j["arch_layout"] = {"m2", {"T2"}};
  EXPECT_THROW(ModelConfig::from_json(j, "t"), UserError);
  j["arch_layout"] = {"m2", {"T2x"}, "m2"};
  EXPECT_THROW(ModelConfig::from_json(j, "t"), UserError);
}

class HNetDecode : public ::testing::TestWithParam<int> {};

TEST_P(HNetDecode, StepEqualsFullForwardAndBatchEqualsSingle) {
  const int stages = GetParam();
  auto m = make_hnet(stages, 3);
  torch::NoGradGuard ng;
  const int64_t B = 3, L = 24;
  auto ids = torch::randint(0, 256, {B, L}, at::kLong);
  StageRecorder stage_rec;
  auto& tr = stage_rec.traces;
  auto full = m->forward(ids);
  ASSERT_EQ((int)tr.size(), stages);
  // rows must chunk differently for the test to mean something
  const int64_t total = tr[0].b.sum().item<int64_t>();
  EXPECT_GT(total, B) << "only the forced boundaries";
  EXPECT_LT(total, B * L) << "every byte a boundary";
  // some step must see rows that disagree (inner network stepped on a subset)
  EXPECT_GT((tr[0].b.any(0) != tr[0].b.all(0)).sum().item<int64_t>(), 0);
  // batch == each sequence alone
  for (int64_t r = 0; r < B; ++r)
    EXPECT_LT(maxdiff(m->forward(ids.narrow(0, r, 1)), full.narrow(0, r, 1)), 1e-4) << "row " << r;
  // prefill 7 bytes, then step byte by byte (rows take different boundaries)
  auto st = m->new_state(B);
  auto pre = m->forward(ids.narrow(1, 0, 7), &st);
  EXPECT_LT(maxdiff(pre, full.narrow(1, 0, 7)), 1e-4);
  for (int64_t t = 7; t < L; ++t)
    EXPECT_LT(maxdiff(m->step(ids.select(1, t), st), full.select(1, t)), 1e-4) << "t=" << t;
  // from scratch, stepping every byte
  auto st2 = m->new_state(B);
  for (int64_t t = 0; t < L; ++t)
    EXPECT_LT(maxdiff(m->step(ids.select(1, t), st2), full.select(1, t)), 1e-4) << "scratch t=" << t;
  // continuing a prefill with a second forward segment (scoring long inputs)
  auto st3 = m->new_state(1);
  auto a = m->forward(ids.narrow(0, 0, 1).narrow(1, 0, 10), &st3);
  auto b = m->forward(ids.narrow(0, 0, 1).narrow(1, 10, L - 10), &st3);
  EXPECT_LT(maxdiff(at::cat({a, b}, 1), full.narrow(0, 0, 1)), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Stages, HNetDecode, ::testing::Values(1, 2));

TEST(HNet, GradientsReachRoutingAndResidual) {
  auto m = make_hnet(1, 4);
  m->train();
  auto ids = torch::randint(0, 256, {2, 16}, at::kLong);
  StageRecorder stage_rec;
  auto& tr = stage_rec.traces;
  auto loss = m->forward(ids).logsumexp(-1).mean();
  loss = loss + 0.03 * ratio_loss(tr[0].p, tr[0].b, tr[0].mask, 6.0).loss;
  loss.backward();
  auto p = m->named_parameters();
  for (auto n : {"backbone.routing_module.q_proj_layer.weight", "backbone.routing_module.k_proj_layer.weight",
                 "backbone.residual_proj.weight", "backbone.main_network.pad_dimension",
                 "backbone.main_network.main_network.layers.0.mixer.Wqkv.weight"})
    EXPECT_GT(p[n].grad().abs().sum().item<double>(), 0.0) << n;
}

#include "infer/generate.h"

TEST(HNet, BatchGenerationEqualsSingleRuns) {
  auto m = make_hnet(2, 6);
  SampleOptions o;
  o.temperature = 0.9;
  o.seed = 10;
  auto batch = generate_batch(*m, "ab", 24, 3, o, false);
  ASSERT_EQ(batch.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    SampleOptions so = o;
    so.seed = o.seed + r;
    EXPECT_EQ(batch[r], generate(*m, "ab", 24, so, false)) << r;
  }
}

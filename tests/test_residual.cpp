// Residual-stream policies (mhc.md): config, presets, equivalences with the
// plain residual at step 0, gradients, decode, H-Net with mHC.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "core/forward_context.h"
#include "core/error.h"
#include "gradcheck.h"
#include "model/lm.h"
#include "model/layers/mlp.h"
#include "model/residual/residual.h"

using namespace dynarch;
using nlohmann::json;

namespace {

double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

json iso_config(const std::string& layout, const json& residual = nullptr) {
  auto j = json::parse(R"({"arch_layout": [")" + layout + R"("], "d_model": [32], "d_intermediate": [64],
    "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 8},
    "attn_cfg": {"num_heads": [4], "rotary_emb_dim": [4], "window_size": [-1]}})");
  if (!residual.is_null()) j["residual"] = residual;
  return j;
}

json hnet_config(const json& residual) {
  auto j = json::parse(R"({"arch_layout": ["m2", ["T2"], "m2"], "d_model": [32, 48], "d_intermediate": [0, 128],
      "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 16},
      "attn_cfg": {"num_heads": [2, 4], "rotary_emb_dim": [8, 8], "window_size": [-1, -1]}})");
  j["residual"] = residual;
  return j;
}

std::string config_error(const json& j) {
  try {
    ModelConfig::from_json(j, "cfg.json");
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// Copies every parameter the plain model has into `m` (names are shared).
void copy_shared(ByteLM& from, ByteLM& to) {
  torch::NoGradGuard ng;
  auto dst = to.named_parameters();
  for (auto& kv : from.named_parameters()) dst[kv.key()].copy_(kv.value());
}

ResidualConfig mhc(int n, const std::string& init = "identity") {
  return ResidualConfig::from_json({{"type", "mhc"}, {"n", n}, {"init", init}}, "t");
}

}  // namespace

TEST(ResidualConfig, DefaultsRoundTripAndErrors) {
  auto c = ModelConfig::from_json(iso_config("T2", {{"type", "mhc"}}), "t");
  ASSERT_EQ(c.residual.size(), 1u);
  EXPECT_EQ(c.residual[0].n, 4);
  EXPECT_EQ(c.residual[0].sinkhorn_iters, 20);
  EXPECT_EQ(c.residual[0].collapse, "mean");
  EXPECT_EQ(ModelConfig::from_json(c.to_json(), "rt").to_json(), c.to_json());
  // absent = plain and not written back (official configs stay as they were)
  auto p = ModelConfig::from_json(iso_config("T2"), "t");
  EXPECT_FALSE(p.residual[0].streams());
  EXPECT_FALSE(p.to_json().contains("residual"));
  // per-stage list
  auto h = ModelConfig::from_json(hnet_config(json::array({{{"type", "mhc"}, {"n", 2}}, {{"type", "plain"}}})), "t");
  EXPECT_EQ(h.residual[0].n, 2);
  EXPECT_FALSE(h.residual[1].streams());
  EXPECT_EQ(ModelConfig::from_json(h.to_json(), "rt").to_json(), h.to_json());

  EXPECT_NE(config_error(iso_config("T2", {{"type", "mhc"}, {"n", 0}})).find("residual.n"), std::string::npos);
  EXPECT_NE(config_error(iso_config("T2", {{"type", "mhc"}, {"sinkhorn_iters", 0}})).find("sinkhorn_iters"),
            std::string::npos);
  EXPECT_NE(config_error(iso_config("T2", {{"type", "mhc"}, {"sinkhorn_eps", -1}})).find("sinkhorn_eps"),
            std::string::npos);
  EXPECT_NE(config_error(iso_config("T2", {{"type", "mhc"}, {"init", "clever"}})).find("unknown preset \"clever\""),
            std::string::npos);
  EXPECT_NE(config_error(iso_config("T2", {{"type", "mhc"}, {"collapse", "max"}})).find("residual.collapse"),
            std::string::npos);
  EXPECT_NE(config_error(iso_config("T2", {{"type", "dense"}})).find("unknown residual type"), std::string::npos);
  EXPECT_NE(config_error(iso_config("T2", {{"type", "mhc"}, {"streams", 4}})).find("unknown field \"streams\""),
            std::string::npos);
  EXPECT_NE(config_error(iso_config("T2", {{"type", "hc"}, {"n", "four"}})).find("wrong type"), std::string::npos);
  EXPECT_NE(config_error(hnet_config(json::array({{{"type", "mhc"}}}))).find("residual has 1 entries"),
            std::string::npos);
}

TEST(ResidualConfig, OldFusedFieldLoadsAndIsNotWritten) {
  // Runs written before the kernel mode moved to the forward context carry
  // "fused" in config.json: they still load; the field is not written back.
  auto c = ModelConfig::from_json(iso_config("T2", {{"type", "mhc"}, {"fused", false}}), "t");
  EXPECT_EQ(c.residual[0].type, "mhc");
  EXPECT_FALSE(c.to_json()["residual"].contains("fused"));
  EXPECT_NE(config_error(iso_config("T2", {{"type", "mhc"}, {"fused", "no"}})).find("wrong type"), std::string::npos);
}

TEST(ForwardContext, ScopesNestAndRestore) {
  EXPECT_FALSE(forward_context().reference());
  {
    ReferenceKernelsScope reference;
    EXPECT_TRUE(forward_context().reference());
    {
      ConnectionRecorder rec;
      SeparateMergeScope separate;
      EXPECT_EQ(forward_context().connections, &rec.traces);
      EXPECT_TRUE(forward_context().variants.separate_merge);
      EXPECT_TRUE(forward_context().reference());
    }
    EXPECT_EQ(forward_context().connections, nullptr);
    EXPECT_FALSE(forward_context().variants.separate_merge);
  }
  EXPECT_FALSE(forward_context().reference());
}

TEST(ResidualConfig, SymmetricPresetWarns) {
  testing::internal::CaptureStderr();
  mhc(4, "symmetric");
  EXPECT_NE(testing::internal::GetCapturedStderr().find("never breaks the symmetry"), std::string::npos);
}

TEST(Mhc, PresetMapsAtInit) {
  const int64_t T = 3, D = 8;
  auto X = torch::randn({T, 4, D});
  {
    ManifoldHyperConnection m(mhc(4), D, /*sublayer=*/5);  // home stream 1
    auto [pre, res, post] = m.maps(X);
    EXPECT_NEAR(pre[0][1].item<double>(), 0.952574, 1e-6);
    EXPECT_NEAR(pre[0][0].item<double>(), 0.047426, 1e-6);
    EXPECT_LT(maxdiff(post, torch::ones({T, 4})), 1e-7);
    EXPECT_NEAR(res[2][3][3].item<double>(), 0.992619, 2e-6);
    EXPECT_NEAR(res[2][0][3].item<double>(), 0.002460, 2e-6);
  }
  {
    ManifoldHyperConnection m(mhc(4, "lucidrains"), D, 0);
    auto [pre, res, post] = m.maps(X);
    EXPECT_NEAR(pre[1][0].item<double>(), 0.731059, 1e-6);
    EXPECT_NEAR(pre[1][2].item<double>(), 0.5, 1e-6);
    EXPECT_NEAR(post[0][3].item<double>(), 1.462117, 1e-6);
    EXPECT_NEAR(res[0][1][1].item<double>(), 0.475367, 2e-6);
    EXPECT_NEAR(res[0][1][2].item<double>(), 0.174878, 2e-6);
  }
  {
    torch::manual_seed(0);
    ManifoldHyperConnection m(mhc(4, "zero"), D, 0);
    EXPECT_GT(m.phi.abs().sum().item<double>(), 0.0);  // Xavier
    auto [pre, res, post] = m.maps(X);
    EXPECT_LT(maxdiff(pre, torch::full({T, 4}, 0.5)), 1e-2);
    EXPECT_LT(maxdiff(res, torch::full({T, 4, 4}, 0.25)), 1e-2);  // near-uniform mixing
  }
  // n = 1: H_res is exactly 1
  ManifoldHyperConnection one(mhc(1), D, 0);
  auto [pre1, res1, post1] = one.maps(torch::randn({T, 1, D}));
  EXPECT_EQ(maxdiff(res1, torch::ones({T, 1, 1})), 0.0);
}

TEST(Mhc, SinglePlainStreamEqualsResidual) {
  // n = 1 at the identity preset: x + F(x) up to the eps of F's pre-norm.
  torch::manual_seed(1);
  const int64_t D = 16;
  RMSNorm norm(D);
  SwiGLU mlp(D, 32);
  auto F = [&](const at::Tensor& u) { return mlp.forward(norm.forward(u)); };
  ManifoldHyperConnection c(mhc(1), D, 0);
  auto x = torch::randn({2, 5, 1, D});
  EXPECT_LT(maxdiff(c.forward(x, F), x + F(x)), 1e-5);
}

class ResidualEqualsPlain : public ::testing::TestWithParam<std::tuple<std::string, std::string, std::string>> {};

TEST_P(ResidualEqualsPlain, AtStepZero) {
  auto [type, init, collapse] = GetParam();
  const std::string layout = "T1m1M1f1g1";
  torch::manual_seed(3);
  ByteLM plain(ModelConfig::from_json(iso_config(layout), "t"));
  testing::internal::CaptureStderr();  // the symmetric preset warns
  ByteLM streams(ModelConfig::from_json(
      iso_config(layout, {{"type", type}, {"n", 4}, {"init", init}, {"collapse", collapse}}), "t"));
  testing::internal::GetCapturedStderr();
  copy_shared(plain, streams);
  torch::NoGradGuard ng;
  auto ids = torch::randint(0, 256, {2, 11}, at::kLong);
  // F's pre-norm cancels sum(H_pre) only up to its eps: 1e-4 relative on logits.
  EXPECT_LT(maxdiff(streams.forward(ids), plain.forward(ids)), 2e-4) << type << " " << init << " " << collapse;
}

INSTANTIATE_TEST_SUITE_P(
    Presets, ResidualEqualsPlain,
    ::testing::Values(std::make_tuple("mhc", "identity", "mean"), std::make_tuple("mhc", "identity", "sum"),
                      std::make_tuple("mhc", "symmetric", "mean"), std::make_tuple("mhc", "identity", "learned"),
                      std::make_tuple("hc", "identity", "mean"), std::make_tuple("hc", "identity", "sum")));

TEST(Mhc, GradcheckWholeSublayerFp64) {
  torch::manual_seed(4);
  const int64_t D = 6, n = 3;
  auto cfg = ResidualConfig::from_json({{"type", "mhc"}, {"n", n}, {"init", "zero"}, {"sinkhorn_iters", 5}}, "t");
  auto conn = std::make_shared<ManifoldHyperConnection>(cfg, D, 1);
  auto mlp = std::make_shared<SwiGLU>(D, 8);
  conn->to(at::kDouble);
  mlp->to(at::kDouble);
  // Inputs: the stream X and every mHC parameter (alpha large enough to matter).
  auto run = [&](const std::vector<at::Tensor>& in) {
    // functional form: same module code, parameters swapped for the inputs
    auto saved_phi = conn->phi, saved_b = conn->bias, saved_a = conn->alpha;
    conn->phi = in[1];
    conn->bias = in[2];
    conn->alpha = in[3];
    auto out = conn->forward(in[0], [&](const at::Tensor& u) { return mlp->forward(u); });
    conn->phi = saved_phi;
    conn->bias = saved_b;
    conn->alpha = saved_a;
    return out;
  };
  const int64_t K = n * n + 2 * n;
  double err = gradtest::gradcheck_max_error(
      run, {torch::randn({2, 2, n, D}), torch::randn({K, n * D}) * 0.3, torch::randn({K}), torch::full({3}, 0.7)});
  EXPECT_LT(err, 1e-6);
}

TEST(Hc, GradcheckWholeSublayerFp64) {
  torch::manual_seed(5);
  const int64_t D = 5, n = 2;
  auto cfg = ResidualConfig::from_json({{"type", "hc"}, {"n", n}}, "t");
  auto conn = std::make_shared<HyperConnection>(cfg, D, 0);
  auto mlp = std::make_shared<SwiGLU>(D, 8);
  conn->to(at::kDouble);
  mlp->to(at::kDouble);
  auto run = [&](const std::vector<at::Tensor>& in) {
    auto s = std::make_tuple(conn->w_res, conn->static_res, conn->gate_alpha);
    conn->w_res = in[1];
    conn->static_res = in[2];
    conn->gate_alpha = in[3];
    auto out = conn->forward(in[0], [&](const at::Tensor& u) { return mlp->forward(u); });
    std::tie(conn->w_res, conn->static_res, conn->gate_alpha) = s;
    return out;
  };
  double err = gradtest::gradcheck_max_error(
      run, {torch::randn({3, n, D}), torch::randn({n, D}), torch::randn({n, n}), torch::full({1}, 0.5)});
  EXPECT_LT(err, 1e-6);
}

namespace {
// Autograd nodes below t whose name contains `part` (each node once).
int count_nodes(const at::Tensor& t, const std::string& part) {
  std::set<torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> todo{t.grad_fn().get()};
  int n = 0;
  while (!todo.empty()) {
    auto* node = todo.back();
    todo.pop_back();
    if (!node || !seen.insert(node).second) continue;
    n += node->name().find(part) != std::string::npos;
    for (auto& e : node->next_edges()) todo.push_back(e.function.get());
  }
  return n;
}
}  // namespace

namespace {
// A T1M1 mHC model (4 sub-layers) and a twin with the same weights whose
// forward runs in KernelMode::reference (ref_forward).
struct FusedAndReference {
  std::unique_ptr<ByteLM> fused, ref;
  explicit FusedAndReference(json r) {
    fused = std::make_unique<ByteLM>(ModelConfig::from_json(iso_config("T1M1", r), "t"));
    ref = std::make_unique<ByteLM>(ModelConfig::from_json(iso_config("T1M1", r), "t"));
    copy_shared(*fused, *ref);
  }
  at::Tensor ref_forward(const at::Tensor& ids) {
    ReferenceKernelsScope reference;
    return ref->forward(ids);
  }
  // After the same loss on outputs a (fused) and b (reference): equal gradients.
  void expect_same_grads(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
    a.logsumexp(-1).sum().backward();
    b.logsumexp(-1).sum().backward();
    auto pr = ref->named_parameters();
    for (auto& kv : fused->named_parameters())
      EXPECT_LT(maxdiff(kv.value().grad(), pr[kv.key()].grad()), 1e-4) << what << " " << kv.key();
  }
};
}  // namespace

TEST(Mhc, FusedEqualsReferenceInAModel) {
  torch::manual_seed(6);
  FusedAndReference m({{"type", "mhc"}, {"n", 4}, {"init", "zero"}, {"collapse", "learned"}, {"stream_embed", true}});
  auto ids = torch::randint(0, 256, {2, 9}, at::kLong);
  auto a = m.fused->forward(ids), b = m.ref_forward(ids);
  EXPECT_LT(maxdiff(a, b), 1e-4);
  // T1M1 = 4 mHC sub-layers: 3 merges fused into the next input pass, the last one settled.
  EXPECT_EQ(count_nodes(a, "MhcMergePreFn"), 3);
  EXPECT_EQ(count_nodes(a, "PostResFn"), 1);
  // The reference mode runs the tensor-op forms: none of the fused ops in its graph.
  EXPECT_EQ(count_nodes(b, "MhcMergePreFn"), 0);
  EXPECT_EQ(count_nodes(b, "PostResFn"), 0);
  {
    SeparateMergeScope separate;  // every merge as its own hc_post_res pass: the same numbers
    auto c = m.fused->forward(ids);
    EXPECT_LT(maxdiff(c, a), 1e-5);
    EXPECT_EQ(count_nodes(c, "MhcMergePreFn"), 0);
    EXPECT_EQ(count_nodes(c, "PostResFn"), 4);
  }
  m.expect_same_grads(a, b, "learned");
}

// Mean and sum collapses fold the last pending merge into one pre-mix pass:
// no hc_post_res node, the same values and gradients as the reference path.
TEST(Mhc, CollapseOfPendingMergeEqualsReference) {
  for (const char* collapse : {"mean", "sum"}) {
    torch::manual_seed(8);
    FusedAndReference m({{"type", "mhc"}, {"n", 4}, {"init", "zero"}, {"collapse", collapse}, {"stream_embed", true}});
    auto ids = torch::randint(0, 256, {2, 9}, at::kLong);
    auto a = m.fused->forward(ids), b = m.ref_forward(ids);
    EXPECT_LT(maxdiff(a, b), 1e-4) << collapse;
    EXPECT_GT(a.abs().max().item<double>(), 0.1);
    EXPECT_EQ(count_nodes(a, "MhcMergePreFn"), 3) << collapse;
    EXPECT_EQ(count_nodes(a, "PostResFn"), 0) << collapse;
    EXPECT_EQ(count_nodes(a, "PreMixFn"), 1) << collapse;
    m.expect_same_grads(a, b, collapse);
    // The model's final norm hides a scale error, so also the ends alone, with gradients.
    ResidualConfig rc;
    rc.type = "mhc", rc.n = 3, rc.collapse = collapse;
    StreamEnds ends(rc, 5);
    std::vector<at::Tensor> in = {torch::randn({2, 4, 3, 5}), torch::rand({8, 3, 3}), torch::rand({8, 3}) * 2,
                                  torch::randn({8, 5})};
    auto G = torch::randn({2, 4, 5});
    std::vector<at::Tensor> outs[2];
    for (int path = 0; path < 2; ++path) {
      std::vector<at::Tensor> x;
      for (auto& t : in) x.push_back(t.clone().requires_grad_(true));
      Streams S{x[0], x[1], x[2], x[3]};
      auto out = path == 0 ? ends.collapse(S) : ends.collapse(settle(S));
      outs[path] = {out.detach()};
      for (auto& g : torch::autograd::grad({(out * G).sum()}, x)) outs[path].push_back(g);
    }
    for (size_t i = 0; i < outs[0].size(); ++i) EXPECT_LT(maxdiff(outs[0][i], outs[1][i]), 1e-5) << collapse << " " << i;
  }
}

TEST(Residual, NamesShapesAndWeightDecay) {
  ByteLM m(ModelConfig::from_json(
      iso_config("T1f1", {{"type", "mhc"}, {"n", 4}, {"collapse", "learned"}, {"stream_embed", true}}), "t"));
  auto p = m.named_parameters();
  const std::string L = "backbone.main_network.";
  EXPECT_EQ(p[L + "layers.0.hc_mixer.phi"].sizes(), (at::IntArrayRef{24, 128}));
  EXPECT_EQ(p[L + "layers.0.hc_mlp.bias"].sizes(), (at::IntArrayRef{24}));
  EXPECT_EQ(p[L + "layers.1.hc_mlp.alpha"].sizes(), (at::IntArrayRef{3}));
  EXPECT_FALSE(p.contains(L + "layers.1.hc_mixer.phi"));  // f: no mixer
  EXPECT_EQ(p[L + "hc_ends.head_phi"].sizes(), (at::IntArrayRef{4, 128}));
  EXPECT_EQ(p[L + "hc_ends.stream_embed"].sizes(), (at::IntArrayRef{4, 32}));
  // home streams: sub-layers 0 (mixer), 1 (MLP) of layer 0, 2 (MLP) of layer 1
  EXPECT_EQ(p[L + "layers.0.hc_mlp.bias"][1].item<double>(), 3.0);
  EXPECT_EQ(p[L + "layers.1.hc_mlp.bias"][2].item<double>(), 3.0);
  std::map<std::string, bool> wd;
  for (auto& pi : m.param_infos()) wd[pi.name] = pi.weight_decay;
  EXPECT_TRUE(wd[L + "layers.0.hc_mixer.phi"]);
  EXPECT_TRUE(wd[L + "hc_ends.head_phi"]);
  EXPECT_FALSE(wd[L + "layers.0.hc_mixer.bias"]);
  EXPECT_FALSE(wd[L + "layers.0.hc_mixer.alpha"]);
  EXPECT_FALSE(wd[L + "hc_ends.head_bias"]);
  EXPECT_FALSE(wd[L + "hc_ends.stream_embed"]);
  ByteLM h(ModelConfig::from_json(iso_config("T1", {{"type", "hc"}, {"n", 2}}), "t"));
  for (auto& pi : h.param_infos()) {
    if (pi.name.find("hc_") == std::string::npos) continue;
    const bool dynamic = pi.name.find(".w_") != std::string::npos;
    EXPECT_EQ(pi.weight_decay, dynamic) << pi.name;
  }
}

TEST(Residual, StepDecodeEqualsFullForward) {
  torch::manual_seed(7);
  for (json r : {json{{"type", "mhc"}, {"n", 4}, {"init", "zero"}, {"collapse", "learned"}},
                 json{{"type", "hc"}, {"n", 3}}}) {
    ByteLM m(ModelConfig::from_json(iso_config("T1m1M1g1", r), "t"));
    m.eval();
    torch::NoGradGuard ng;
    auto ids = torch::randint(0, 256, {3, 10}, at::kLong);
    auto full = m.forward(ids);
    auto st = m.new_state(3);
    auto pre = m.forward(ids.narrow(1, 0, 4), &st);
    EXPECT_LT(maxdiff(pre, full.narrow(1, 0, 4)), 1e-5);
    for (int64_t t = 4; t < 10; ++t) EXPECT_LT(maxdiff(m.step(ids.select(1, t), st), full.select(1, t)), 1e-5) << t;
  }
}

TEST(Residual, HNetWithMhcDecodesAndBatches) {
  torch::manual_seed(8);
  ByteLM m(ModelConfig::from_json(hnet_config({{"type", "mhc"}, {"n", 4}, {"init", "zero"}}), "t"));
  {
    torch::NoGradGuard ng;
    for (auto& kv : m.named_parameters())
      if (kv.key().find("residual_proj.weight") != std::string::npos) kv.value().normal_(0, 0.05);
  }
  m.eval();
  torch::NoGradGuard ng;
  const int64_t B = 3, L = 20;
  auto ids = torch::randint(0, 256, {B, L}, at::kLong);
  StageRecorder stage_rec;
  auto& tr = stage_rec.traces;
  auto full = m.forward(ids);
  EXPECT_GT((tr[0].b.any(0) != tr[0].b.all(0)).sum().item<int64_t>(), 0);  // rows chunk differently
  for (int64_t r = 0; r < B; ++r) EXPECT_LT(maxdiff(m.forward(ids.narrow(0, r, 1)), full.narrow(0, r, 1)), 1e-4);
  auto st = m.new_state(B);
  for (int64_t t = 0; t < L; ++t) EXPECT_LT(maxdiff(m.step(ids.select(1, t), st), full.select(1, t)), 1e-4) << t;
}

TEST(Residual, RecorderSeesEverySublayer) {
  ByteLM m(ModelConfig::from_json(iso_config("T1f1", {{"type", "mhc"}, {"n", 2}}), "t"));
  name_connections(m);
  ConnectionRecorder rec;
  torch::NoGradGuard ng;
  m.forward(torch::randint(0, 256, {2, 5}, at::kLong));
  ASSERT_EQ(rec.traces.size(), 3u);
  EXPECT_EQ(rec.traces[0].name, "backbone.main_network.layers.0.hc_mixer");
  EXPECT_EQ(rec.traces[2].name, "backbone.main_network.layers.1.hc_mlp");
  EXPECT_EQ(rec.traces[1].res.sizes(), (at::IntArrayRef{10, 2, 2}));
}

TEST(Residual, HModelNodesUseTheStreamPolicy) {
  // mhc.md: the residual policy applies to the H-Model's layers too (inside each node).
  torch::manual_seed(9);
  auto j = iso_config("T1m1f1", {{"type", "mhc"}, {"n", 2}, {"init", "zero"}});
  j["hmodel"] = {{"T", 2}};
  auto m = std::make_shared<ByteLM>(ModelConfig::from_json(j, "t"));
  auto p = m->named_parameters();
  EXPECT_TRUE(p.contains("backbone.main_network.nodes.1.layer.layers.0.hc_mixer.phi"));
  EXPECT_TRUE(p.contains("backbone.main_network.nodes.3.layer.layers.0.hc_mlp.phi"));
  m->eval();
  torch::NoGradGuard ng;
  auto ids = torch::randint(0, 256, {2, 9}, at::kLong);
  auto full = m->forward(ids);
  auto st = m->new_state(2);
  for (int64_t t = 0; t < 9; ++t) EXPECT_LT(maxdiff(m->step(ids.select(1, t), st), full.select(1, t)), 1e-5) << t;
  name_connections(*m);
  ConnectionRecorder rec;
  m->forward(ids);
  // 2 iterations x (T: 2 + m: 1 + f: 1 sub-layers), recorded per node stack
  EXPECT_EQ(rec.traces.size(), 8u);
  std::set<std::string> stacks;
  for (auto& t : rec.traces) stacks.insert(t.name.substr(0, t.name.rfind(".layers.")));
  EXPECT_EQ(stacks.size(), 3u);
}

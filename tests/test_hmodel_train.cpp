// H-Model training-side pieces: gradients reach every head (fp64 finite
// differences), frozen nodes, objectives, doubly-stochastic routing,
// composition from a saved model's layers, halting, source embeddings.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>

#include "run/compose.h"
#include "gradcheck.h"
#include "hmodel_util.h"
#include "train/lm_objective.h"
#include "inspect/routes.h"
#include "io/atomic_file.h"
#include "io/fs_tree.h"
#include "model/aux_loss.h"
#include "model/lm.h"
#include "train/adamw.h"
#include "run/checkpoint.h"

using namespace dynarch;
using namespace dynarch::hmtest;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("dynarch_hm_" + name + "_" + std::to_string(::getpid()));
  io::remove_tree(p.string());
  io::make_dirs(p.string());
  return p;
}
}  // namespace

TEST(HModelGrad, FiniteDifferencesReachEveryHead) {
  torch::manual_seed(11);
  auto m = make_hmodel("T1g1", {{"T", 2}, {"routing", {{"alpha", 1.7}}}}, true);
  auto x = torch::randn({1, 3, 32}, at::kDouble);
  std::vector<std::shared_ptr<RoutingHead>> heads{m->input_head};
  for (auto& n : m->nodes) heads.push_back(n->head);
  std::vector<at::Tensor> inputs;
  for (auto& h : heads) inputs.push_back(h->proj->bias), inputs.push_back(h->proj->weight.narrow(1, 0, 6));
  auto f = [&](const std::vector<at::Tensor>& in) {
    for (size_t i = 0; i < heads.size(); ++i) {
      heads[i]->proj->bias = in[2 * i];
      heads[i]->proj->weight = at::cat({in[2 * i + 1], heads[i]->proj->weight.narrow(1, 6, 26).detach()}, 1);
    }
    return m->forward(x);
  };
  EXPECT_LT(gradtest::gradcheck_max_error(f, inputs), 1e-6);
  // and every head gets a non-zero gradient
  auto in = inputs;
  for (auto& t : in) t = t.detach().clone().requires_grad_(true);
  auto y = f(in);
  auto g = torch::autograd::grad({(y * torch::randn_like(y)).sum()}, in);
  for (size_t i = 0; i < g.size(); ++i) EXPECT_GT(g[i].abs().max().item<double>(), 0.0) << "input " << i;
}

TEST(HModelObjectives, UniformRoutingValuesAndGradient) {
  // Zero heads: uniform rows over K = 3 targets, every layer active.
  auto m = make_hmodel("f2", {{"T", 2}, {"loss", {{"lambda_depth", 0.5}, {"lambda_self", 0.1}, {"lambda_ent", 0.2},
                                                   {"lambda_bal", 0.3}}}});
  {
    torch::NoGradGuard ng;
    for (auto& kv : m->named_parameters())
      if (kv.key().find("head.proj") != std::string::npos) kv.value().zero_();
  }
  auto x = torch::randn({2, 4, 32}, at::kDouble);
  AuxLossCollector aux;
  m->forward(x);
  std::map<std::string, double> v;
  for (auto& t : aux.terms) v[t.name] = t.value.item<double>();
  EXPECT_NEAR(v.at("hmodel_depth"), (30.0 / 27.0) / 2, 1e-12);
  EXPECT_NEAR(v.at("hmodel_self"), 1.0 / 3, 1e-12);
  EXPECT_NEAR(v.at("hmodel_self.2"), 1.0 / 3, 1e-12);
  EXPECT_NEAR(v.at("hmodel_ent"), 1.0, 1e-12);
  EXPECT_NEAR(v.at("hmodel_bal"), 1.0, 1e-12);
  EXPECT_NEAR(aux.total().item<double>(),
              0.5 * v["hmodel_depth"] + 0.1 * v["hmodel_self"] + 0.2 * v["hmodel_ent"] + 0.3 * v["hmodel_bal"], 1e-12);
  // the compute penalty is differentiable in the routing: finite differences on the OUT logit of IN
  auto& b = m->input_head->proj->bias;
  auto depth_at = [&](double delta) {
    auto nudge = [&](double v) {
      torch::NoGradGuard ng;
      b[2] += v;
    };
    nudge(delta);
    AuxLossCollector a;
    m->forward(x);
    nudge(-delta);
    for (auto& t : a.terms)
      if (t.name == "hmodel_depth") return t.value.item<double>();
    return -1.0;
  };
  AuxLossCollector a2;
  m->zero_grad();
  m->forward(x);
  at::Tensor depth;
  for (auto& t : a2.terms)
    if (t.name == "hmodel_depth") depth = t.value;
  depth.backward();
  const double fd = (depth_at(1e-6) - depth_at(-1e-6)) / 2e-6;
  EXPECT_NEAR(b.grad()[2].item<double>(), fd, 1e-6);
  EXPECT_LT(b.grad()[2].item<double>(), 0.0);  // more mass to OUT at step 0: shallower
  // the hard form of the self-loop regulariser: no self mass at all
  auto ns = make_hmodel("f2", {{"T", 2}, {"routing", {{"allow_self", false}}}}, true);
  AuxLossCollector a4;
  ns->forward(x);
  for (auto& t : a4.terms)
    if (t.name.rfind("hmodel_self", 0) == 0) EXPECT_EQ(t.value.item<double>(), 0.0) << t.name;
  // no collector, eval or no-grad: nothing is computed
  m->eval();
  AuxLossCollector a3;
  m->forward(x);
  EXPECT_TRUE(a3.terms.empty());
}

TEST(HModelTrain, FrozenNodeStaysBitIdenticalWhileHeadsTrain) {
  torch::manual_seed(12);
  ByteLM m(ModelConfig::from_json(hm_lm_config("T1m1f1", {{"T", 3}, {"nodes", {{{"at", {1, 2}}, {"freeze", true}}}}}), "t"));
  auto* hm = find_hmodel(m);
  ASSERT_NE(hm, nullptr);
  std::map<std::string, at::Tensor> before;
  for (auto& kv : m.named_parameters()) before[kv.key()] = kv.value().detach().clone();
  auto infos = m.param_infos();
  for (auto& pi : infos) EXPECT_EQ(pi.name.find("nodes.1.layer"), std::string::npos) << pi.name;
  for (auto& pi : infos) EXPECT_EQ(pi.name.find("nodes.2.layer"), std::string::npos) << pi.name;
  AdamW opt(infos, {});
  for (int s = 0; s < 3; ++s) {
    opt.zero_grad();
    auto ids = torch::randint(0, 256, {2, 10}, at::kLong);
    lm_loss(m.forward(ids.narrow(1, 0, 9)), ids.narrow(1, 1, 9)).backward();
    opt.step(1e-2);
  }
  int frozen = 0, heads = 0;
  for (auto& kv : m.named_parameters()) {
    const auto& k = kv.key();
    const bool same = at::equal(kv.value(), before[k]);
    if (k.find("nodes.1.layer.") != std::string::npos || k.find("nodes.2.layer.") != std::string::npos) {
      EXPECT_TRUE(same) << k;
      EXPECT_FALSE(kv.value().requires_grad()) << k;
      ++frozen;
    }
    if (k.find("head.proj.weight") != std::string::npos) {
      EXPECT_FALSE(same) << k;
      ++heads;
    }
    if (k.find("nodes.3.layer.layers.0.mlp.fc1") != std::string::npos) EXPECT_FALSE(same) << k;
  }
  EXPECT_GT(frozen, 4);
  EXPECT_EQ(heads, 4);
}

TEST(HModelDoublyStochastic, UnitMassAndChain) {
  torch::manual_seed(13);
  auto m = make_hmodel("T1m1f1g1", {{"routing", {{"doubly_stochastic", true}}}}, true);
  auto x = torch::randn({2, 5, 32}, at::kDouble);
  torch::NoGradGuard ng;
  {
    RouteRecorder rec;
    m->forward(x);
    for (auto& st : rec.traces.at(0).steps) {
      auto into = st.C.sum(-2), out = st.C.sum(-1);  // per target / per sender
      EXPECT_LT(maxdiff(into, torch::ones_like(into)), 1e-5);
      EXPECT_LT(maxdiff(out, torch::ones_like(out)), 2e-2);
      EXPECT_TRUE(st.sender.all().item<bool>());  // every row present at every step
    }
  }
  // A hard permutation through the heads and Sinkhorn (eps 0, logits c (2P - 1) with c = 40, so
  // exp(-2c) vanishes below fp64's ulp) is a plain stack exactly. P is the reversed chain
  // IN -> L -> L-1 -> ... -> 1 -> OUT, not symmetric: a sender/target mix-up changes the result.
  const int L = m->L;
  auto p = make_hmodel("T1m1f1g1", {{"routing", {{"doubly_stochastic", true}, {"sinkhorn_eps", 0.0}}}});
  auto set_row = [&](RoutingHead& head, int target) {
    head.proj->weight.zero_();
    head.proj->bias.fill_(-40.0);
    head.proj->bias[target] = 40.0;
  };
  set_row(*p->input_head, L - 1);  // IN -> layer L
  for (int j = 2; j <= L; ++j) set_row(*p->nodes[j - 1]->head, j - 2);  // j -> j - 1
  set_row(*p->nodes[0]->head, L);  // 1 -> OUT
  auto rev = x;
  for (int j = L; j >= 1; --j) rev = p->nodes[j - 1]->layer->forward(rev);
  EXPECT_EQ(maxdiff(p->forward(x), p->rmsnorm->forward(rev)), 0.0);
  // chain init c (2I - 1) with a large c starts at the plain stack (up to the Sinkhorn eps, 1e-6 per division)
  auto c = make_hmodel("T1m1f1g1", {{"routing", {{"doubly_stochastic", true}}}, {"head", {{"init", "chain"}, {"init_c", 40}}}});
  EXPECT_LT(maxdiff(c->forward(x), plain_stack(*c, x)), 1e-5);
}

TEST(HModelDoublyStochastic, PowerSharpensTheSinkhornOutput) {
  // sharpen = power: C = SK(Z)^alpha renormalised per target. alpha = 1 is the plain projection;
  // alpha = 2 is the square of that projection's C column-normalised, not SK(2 Z).
  torch::manual_seed(18);
  auto x = torch::randn({2, 4, 32}, at::kDouble);
  auto routes = [&](const std::string& sharpen, double alpha) {
    auto m = make_hmodel("T1f1g1", {{"routing", {{"doubly_stochastic", true}, {"sharpen", sharpen}, {"alpha", alpha}, {"sinkhorn_eps", 0.0}}}},
                         true);  // same seed: same weights in every call
    RouteRecorder rec;
    torch::NoGradGuard ng;
    m->forward(x);
    return rec.traces.at(0).steps.at(0).C;  // step 0: only the heads' biases and IN's state
  };
  torch::manual_seed(19);
  auto sk1 = routes("softmax", 1.0);
  torch::manual_seed(19);
  auto pw1 = routes("power", 1.0);
  torch::manual_seed(19);
  auto pw2 = routes("power", 2.0);
  torch::manual_seed(19);
  auto sk2 = routes("softmax", 2.0);
  EXPECT_LT(maxdiff(pw1, sk1), 1e-12);
  auto sq = sk1.pow(2.0);
  EXPECT_LT(maxdiff(pw2, sq / sq.sum(-2, true)), 1e-12);
  auto into = pw2.sum(-2);
  EXPECT_LT(maxdiff(into, torch::ones_like(into)), 1e-12);  // targets keep unit mass
  EXPECT_GT(maxdiff(pw2, sk2), 1e-3);                        // not SK(alpha Z)
  EXPECT_GT(maxdiff(pw2, sk1), 1e-3);
}

TEST(HModelCompose, LoadsTheRightTensorsFromASavedModel) {
  torch::manual_seed(14);
  auto dir = temp_dir("compose");
  auto src_cfg = ModelConfig::from_json(
      json::parse(R"({"arch_layout": ["T1m1"], "d_model": [48], "d_intermediate": [64],
        "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 8},
        "attn_cfg": {"num_heads": [4], "rotary_emb_dim": [4], "window_size": [-1]}})"),
      "src");
  ByteLM src(src_cfg);
  io::write_file_atomic((dir / "config.json").string(), src_cfg.to_json().dump());
  save_weights((dir / "model.safetensors").string(), src);
  // pool m1 T1 f1 of width 32: nodes 1, 2 = source layers 1 (m), 0 (T) through linear adapters, frozen
  auto h = json{{"T", 3},
                {"head", {{"init", "chain"}}},
                {"nodes", {{{"at", {1, 2}}, {"from", dir.string()}, {"layers", {1, 0}}, {"freeze", true},
                            {"adapter", "linear"}}}}};
  auto cfg = ModelConfig::from_json(hm_lm_config("m1T1f1", h), "t");
  ByteLM m(cfg);
  const int64_t n = load_pretrained_nodes(m);
  auto* hm = find_hmodel(m);
  EXPECT_EQ(n, (int64_t)(hm->nodes[0]->layer->parameters().size() + hm->nodes[1]->layer->parameters().size()));
  auto sp = src.named_parameters();
  for (auto [j, k] : {std::pair{1, 1}, std::pair{2, 0}})
    for (auto& kv : hm->nodes[j - 1]->layer->named_parameters()) {
      auto name = "backbone.main_network.layers." + std::to_string(k) + "." + kv.key().substr(9);
      ASSERT_TRUE(sp.contains(name)) << name;
      EXPECT_TRUE(at::equal(kv.value(), sp[name])) << name;
    }
  EXPECT_EQ(hm->nodes[0]->adapter_in->weight.size(0), 48);
  // chain within the source: IN -> 1 -> 2 -> OUT, fresh node 3 its own run (IN -> 3 -> OUT)
  EXPECT_GT(hm->input_head->proj->bias[0].item<double>(), 0);
  EXPECT_GT(hm->input_head->proj->bias[2].item<double>(), 0);
  EXPECT_GT(hm->nodes[0]->head->proj->bias[1].item<double>(), 0);
  EXPECT_GT(hm->nodes[1]->head->proj->bias[3].item<double>(), 0);
  EXPECT_GT(hm->nodes[2]->head->proj->bias[3].item<double>(), 0);
  // the saved config is self-contained (source_config embedded): it parses without the source
  auto saved = cfg.to_json();
  io::remove_tree(dir.string());
  EXPECT_EQ(ModelConfig::from_json(saved, "saved").to_json(), saved);
  ByteLM again(ModelConfig::from_json(saved, "saved"));
  EXPECT_THROW(load_pretrained_nodes(again), UserError);  // the weights are gone
  torch::NoGradGuard ng;
  EXPECT_EQ(m.forward(torch::randint(0, 256, {1, 6}, at::kLong)).size(2), 256);
}

TEST(HModelCompose, WiderNodesThroughAdapters) {
  torch::manual_seed(17);
  auto m = make_hmodel("T1f1", {{"T", 2}, {"nodes", {{{"at", {1}}, {"d_model", 48}, {"adapter", "pad"}},
                                                     {{"at", {2}}, {"d_model", 40}, {"adapter", "linear"}}}}});
  auto names = m->named_parameters();
  ASSERT_TRUE(names.contains("nodes.1.adapter_in.pad"));
  EXPECT_EQ(names["nodes.1.adapter_in.pad"].numel(), 16);
  EXPECT_FALSE(names.contains("nodes.1.adapter_out.weight"));  // pad keeps the first d outputs
  EXPECT_EQ(names["nodes.2.adapter_in.weight"].sizes(), (std::vector<int64_t>{40, 32}));
  EXPECT_EQ(names["nodes.2.adapter_out.weight"].sizes(), (std::vector<int64_t>{32, 40}));
  EXPECT_EQ(names["nodes.1.layer.layers.0.mixer.Wqkv.weight"].size(1), 48);
  torch::NoGradGuard ng;
  auto x = torch::randn({1, 5, 32}, at::kDouble);
  // linear adapters start as [I 0] / [I; 0]: the node is its layer on the zero-padded input, cut back to d
  auto h = m->nodes[1]->apply(x, nullptr, nullptr, {}, false);
  auto ref = m->nodes[1]->layer->forward(at::cat({x, torch::zeros({1, 5, 8}, at::kDouble)}, -1)).narrow(-1, 0, 32);
  EXPECT_LT(maxdiff(h, ref), 1e-12);
  EXPECT_EQ(m->forward(x).size(2), 32);
}

TEST(HModelCompose, BadSourcesAreClearErrors) {
  auto dir = temp_dir("compose_bad");
  auto plain = hm_config("T1m1", json::object());
  plain.erase("hmodel");
  ByteLM src(ModelConfig::from_json(plain, "s"));
  io::write_file_atomic((dir / "config.json").string(), src.config.to_json().dump());
  save_weights((dir / "model.safetensors").string(), src);
  auto err = [&](const json& node) { return config_error(hm_config("m1T1", {{"nodes", {node}}})); };
  // layer types must agree: node 1 is 'm', source layer 0 is 'T'
  auto e = err({{"at", {1}}, {"from", dir.string()}, {"layers", {0}}});
  EXPECT_NE(e.find("hmodel.nodes[0]"), std::string::npos) << e;
  EXPECT_NE(e.find("'T'"), std::string::npos) << e;
  EXPECT_NE(err({{"at", {1}}, {"from", (dir / "nope").string()}}).find("does not exist"), std::string::npos);
  EXPECT_NE(err({{"at", {1}}, {"from", dir.string()}, {"layers", {7}}}).find("hmodel.nodes[0].layers"), std::string::npos);
  // a wrong prefix is found when loading
  ByteLM m(ModelConfig::from_json(
      hm_config("m1T1", {{"nodes", {{{"at", {1}}, {"from", dir.string()}, {"layers", {1}}, {"prefix", "x.layers."}}}}}), "t"));
  try {
    load_pretrained_nodes(m);
    FAIL() << "wrong prefix accepted";
  } catch (const UserError& ex) {
    EXPECT_NE(std::string(ex.what()).find("missing tensor x.layers.1."), std::string::npos) << ex.what();
  }
  io::remove_tree(dir.string());
}

TEST(HModelInfer, HaltingStopsWhenTheWalkHasLeft) {
  auto m = make_hmodel("f2", {{"T", 3}, {"infer", {{"halt_eps", 1e-3}}}});
  {
    torch::NoGradGuard ng;
    m->input_head->proj->weight.zero_();
    m->input_head->proj->bias.copy_(torch::tensor({0.0, 0.0, 50.0}));  // IN -> OUT
  }
  m->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 4, 32}, at::kDouble);
  auto y = m->forward(x);
  EXPECT_EQ(m->stats.halted, 1);
  EXPECT_EQ(m->stats.steps_run, 1);
  EXPECT_EQ(m->stats.calls, 0);
  EXPECT_LT(maxdiff(y, m->rmsnorm->forward(x)), 1e-12);
  // Without halting the layers still run: their vanishing input mass does not make their
  // messages vanish (RMSNorm inside the block; count/weighted normalise by contributors).
  m->cfg.halt_eps = 0;
  EXPECT_TRUE(torch::isfinite(m->forward(x)).all().item<bool>());
  EXPECT_EQ(m->stats.steps_run, 1 + 4);
  EXPECT_EQ(m->stats.calls, 2 * 2 * 3);
}

TEST(HModelRouting, SourceEmbedAndAlphaSchedule) {
  torch::manual_seed(15);
  auto a = make_hmodel("f2", {{"T", 2}, {"routing", {{"source_embed", true}}}}, true);
  auto b = make_hmodel("f2", {{"T", 2}}, false);
  {
    torch::NoGradGuard ng;
    auto bp = b->named_parameters();
    for (auto& kv : a->named_parameters())
      if (bp.contains(kv.key())) bp[kv.key()].copy_(kv.value());
  }
  torch::NoGradGuard ng;
  auto x = torch::randn({1, 4, 32}, at::kDouble);
  EXPECT_EQ(maxdiff(a->forward(x), b->forward(x)), 0.0);  // e_i = 0 at init
  a->source_embed.normal_();
  EXPECT_GT(maxdiff(a->forward(x), b->forward(x)), 1e-3);
  ByteLM m(ModelConfig::from_json(
      hm_lm_config("f2", {{"routing", {{"alpha", {{"schedule", "linear"}, {"start", 1}, {"end", 5}, {"steps", 8}}}}}}), "t"));
  EXPECT_DOUBLE_EQ(find_hmodel(m)->alpha(), 5.0);
  set_hmodel_training_step(m, 2);
  EXPECT_DOUBLE_EQ(find_hmodel(m)->alpha(), 2.0);
}

TEST(HModelRoutes, ExportsFollowTheSchema) {
  torch::manual_seed(16);
  // an H-Net whose main network is an H-Model: positions are chunks with byte offsets
  ByteLM m(ModelConfig::from_json(hnet_hm_config("T1f1", 32, {{"T", 3}, {"routing", {{"topk", 2}}}}), "t"));
  const std::string text = "hello routes, héllo";
  auto v = compute_routes(m, text, "tiny");
  auto js = routes_json(v);
  for (auto k : {"model", "L", "T", "granularity", "nodes", "steps", "summary", "tokens"}) EXPECT_TRUE(js.contains(k)) << k;
  EXPECT_EQ(js["nodes"].size(), 4u);  // IN, 2 layers, OUT
  EXPECT_EQ(js["steps"].size(), 4u);  // r = 0..T
  const auto npos = js["tokens"].size();
  EXPECT_EQ(v.trace.steps[0].C.size(1), (int64_t)npos);
  EXPECT_EQ(js["tokens"][0]["offset"], -1);  // BOS
  int64_t covered = 0;
  for (auto& t : js["tokens"]) covered += t["len"].get<int64_t>();
  EXPECT_EQ(covered, (int64_t)text.size());  // the chunks tile the text
  for (auto& st : js["steps"]) {
    EXPECT_EQ(st["C"].size(), st["senders"].size());
    for (auto k : {"r", "active", "counts", "mass", "rms_in", "rms_out"}) EXPECT_TRUE(st.contains(k)) << k;
  }
  EXPECT_EQ(js["steps"][1]["active"].size(), 2u);
  EXPECT_EQ(js["steps"][0]["senders"], json::array({0}));
  for (auto k : {"expected_depth", "exit_profile", "usage", "self_mass", "entropy"})
    EXPECT_TRUE(js["summary"].contains(k)) << k;
  double exits = 0;
  for (double e : js["summary"]["exit_profile"].get<std::vector<double>>()) exits += e;
  EXPECT_LE(exits, 1.0 + 1e-9);
  auto dot = routes_dot(v);
  EXPECT_NE(dot.find("digraph collapsed"), std::string::npos);
  EXPECT_NE(dot.find("digraph trellis"), std::string::npos);
  EXPECT_NE(dot.find("n0 -> "), std::string::npos);
  auto svg = routes_svg(v);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(routes_summary(v.stats, v.node_types).find("expected depth"), std::string::npos);
  // (compare_routes: hand values in HModelMetrics.CompareRoutesHandValues)
  // a model without an H-Model is refused
  auto plain = hm_config("T1", json::object());
  plain.erase("hmodel");
  ByteLM p(ModelConfig::from_json(plain, "t"));
  EXPECT_THROW(compute_routes(p, "abc", "p"), UserError);
}

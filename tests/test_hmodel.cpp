// H-Model (hmodel.md): config errors, the vectors of §4, §5, §11, wiring
// tests of §12 (chain = plain stack, uniform T = 1 = ensemble), causality,
// step decode = forward, sparse = dense, per-sequence padding.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "hmodel_util.h"
#include "model/hmodel/hmodel.h"
#include "model/lm.h"

using namespace dynarch;
using namespace dynarch::hmtest;
using nlohmann::json;

TEST(HModelConfig, DefaultsRoundTrip) {
  auto c = ModelConfig::from_json(hm_config("T2m1f1g1", {{"T", 3}}), "t");
  ASSERT_TRUE(c.hmodel.has_value());
  const auto& h = *c.hmodel;
  EXPECT_EQ(h.L, 5);
  EXPECT_EQ(h.T, 3);
  EXPECT_EQ(h.granularity, "per_token");
  EXPECT_EQ(h.sharpen, "softmax");
  EXPECT_EQ(h.alpha, 1.0);
  EXPECT_EQ(h.norm, "count");
  EXPECT_EQ(h.tau, 0.0);
  EXPECT_TRUE(h.allow_self);
  EXPECT_FALSE(h.inject_input || h.source_embed || h.doubly_stochastic || h.flush_last);
  EXPECT_EQ(h.head_init, "uniform");
  EXPECT_EQ(h.readout, "accumulate");
  EXPECT_EQ(ModelConfig::from_json(c.to_json(), "rt").to_json(), c.to_json());
  // T defaults to L; schedules and node:k survive the round trip
  EXPECT_EQ(ModelConfig::from_json(hm_config("T4", json::object()), "t").hmodel->T, 4);
  auto s = ModelConfig::from_json(
      hm_config("T2", {{"routing", {{"alpha", {{"schedule", "linear"}, {"start", 1}, {"end", 3}, {"steps", 10}}}}},
                       {"readout", {{"mode", "node:2"}}}}),
      "t");
  EXPECT_EQ(ModelConfig::from_json(s.to_json(), "rt").to_json(), s.to_json());
  EXPECT_DOUBLE_EQ(s.hmodel->alpha_at(0), 1.0);
  EXPECT_DOUBLE_EQ(s.hmodel->alpha_at(5), 2.0);
  EXPECT_DOUBLE_EQ(s.hmodel->alpha_at(-1), 3.0);  // after training
  EXPECT_EQ(s.hmodel->readout_node, 2);
  auto e = ModelConfig::from_json(
      hm_config("T2", {{"routing", {{"alpha", {{"schedule", "exp"}, {"start", 1}, {"end", 4}, {"steps", 10}}}}}}), "t");
  EXPECT_NEAR(e.hmodel->alpha_at(5), 2.0, 1e-12);
  // doubly-stochastic forces its settings
  auto d = ModelConfig::from_json(hm_config("T2", {{"routing", {{"doubly_stochastic", true}}}}), "t");
  EXPECT_EQ(d.hmodel->norm, "none");
  EXPECT_TRUE(d.hmodel->inject_input);
  EXPECT_EQ(d.hmodel->readout, "last");
}

TEST(HModelConfig, BadConfigsNameTheField) {
  auto err = [](const json& h, const std::string& layout = "T2") { return config_error(hm_config(layout, h)); };
  EXPECT_NE(err({{"T", 0}}).find("hmodel.T"), std::string::npos);
  EXPECT_NE(err({{"routing", {{"alpha", 0}}}}).find("hmodel.routing.alpha"), std::string::npos);
  EXPECT_NE(err({{"routing", {{"alpha", -1.5}}}}).find("hmodel.routing.alpha"), std::string::npos);
  EXPECT_NE(err({{"routing", {{"topk", 4}}}}).find("hmodel.routing.topk"), std::string::npos);
  EXPECT_NE(err({{"routing", {{"topk", -1}}}}).find("hmodel.routing.topk"), std::string::npos);
  EXPECT_NE(err({{"infer", {{"topk", 9}}}}).find("hmodel.infer.topk"), std::string::npos);
  EXPECT_NE(err({{"routing", {{"sharpen", "hardmax"}}}}).find("hmodel.routing.sharpen"), std::string::npos);
  EXPECT_NE(err({{"routing", {{"norm", "mean"}}}}).find("hmodel.routing.norm"), std::string::npos);
  EXPECT_NE(err({{"routing", {{"power_of", "relu"}}}}).find("hmodel.routing.power_of"), std::string::npos);
  EXPECT_NE(err({{"routing", {{"doubly_stochastic", true}, {"sharpen", "sigmoid"}}}}).find("hmodel.routing.sharpen"),
            std::string::npos);
  EXPECT_NE(err({{"routing", {{"granularity", "per_word"}}}}).find("hmodel.routing.granularity"), std::string::npos);
  EXPECT_NE(err({{"head", {{"init", "random"}}}}).find("hmodel.head.init"), std::string::npos);
  EXPECT_NE(err({{"readout", {{"mode", "node:3"}}}}).find("hmodel.readout.mode"), std::string::npos);
  EXPECT_NE(err({{"readout", {{"mode", "first"}}}}).find("hmodel.readout.mode"), std::string::npos);
  EXPECT_NE(err({{"loss", {{"lambda_self", -1}}}}).find("hmodel.loss"), std::string::npos);
  EXPECT_NE(err({{"infer", {{"skip_semantics", "hold_state"}}}}).find("hold_state"), std::string::npos);
  EXPECT_NE(err({{"colour", 1}}).find("\"colour\""), std::string::npos);
  EXPECT_NE(err({{"routing", {{"doubly_stochastic", true}, {"norm", "count"}}}}).find("hmodel.routing.norm"),
            std::string::npos);
  // a node of another width needs an adapter; pad needs d' > d
  auto wide = err({{"nodes", {{{"at", {2}}, {"d_model", 64}}}}});
  EXPECT_NE(wide.find("hmodel.nodes[0]"), std::string::npos) << wide;
  EXPECT_NE(wide.find("adapter"), std::string::npos) << wide;
  EXPECT_NE(err({{"nodes", {{{"at", {2}}, {"d_model", 16}, {"adapter", "pad"}}}}}).find("pad"), std::string::npos);
  EXPECT_NE(err({{"nodes", {{{"at", {3}}}}}}).find("hmodel.nodes[0].at"), std::string::npos);
  EXPECT_EQ(err({{"nodes", {{{"at", {2}}, {"d_model", 64}, {"adapter", "linear"}}}}}), "");
  // L < 1 (not reachable through the layout grammar)
  EXPECT_THROW(HModelConfig::from_json(json::object(), "h", {}, 32), UserError);
  // per_sequence routing is not causal: rejected for language modelling
  ByteLM m(ModelConfig::from_json(hm_config("T2", {{"routing", {{"granularity", "per_sequence"}}}}), "t"));
  try {
    m.forward(torch::zeros({1, 4}, at::kLong));
    FAIL() << "per_sequence LM forward accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("per_sequence"), std::string::npos);
  }
}

TEST(HModelRouting, SharpeningVectors) {
  auto z = torch::tensor({1.0, 0.0, -1.0}, at::kDouble);
  auto sm = sharpen(z, {"softmax", 2.0, 0, false});
  auto want = torch::tensor({0.866813, 0.117310, 0.015876}, at::kDouble);
  EXPECT_LT(maxdiff(sm, want), 1e-6);
  // power on softmax weights: the spec's identity, against w^alpha / sum w^alpha written out
  auto pw = sharpen(z, {"power", 2.0, 0, false, "softmax"});
  auto w2 = at::softmax(z, -1).pow(2.0);
  EXPECT_LT(maxdiff(pw, w2 / w2.sum()), 1e-12);
  EXPECT_LT(maxdiff(pw, want), 1e-6);
  auto t2 = sharpen(z, {"softmax", 2.0, 2, false});
  EXPECT_LT(maxdiff(t2, torch::tensor({0.880797, 0.119203, 0.0}, at::kDouble)), 1e-6);
  EXPECT_EQ(t2[2].item<double>(), 0.0);
  EXPECT_NEAR(normalized_entropy(sm).item<double>(), 0.401468, 1e-6);
  // sigmoid: per target, no simplex; top-k zeroes the rest
  auto sg = sharpen(z, {"sigmoid", 2.0, 1, false});
  EXPECT_NEAR(sg[0].item<double>(), 1.0 / (1.0 + std::exp(-2.0)), 1e-12);
  EXPECT_EQ(sg[1].item<double>(), 0.0);
  // power (default power_of = sigmoid) sharpens sigmoid gates: sigma(z)^alpha / sum, hand values,
  // not softmax(alpha z) for any alpha (alpha = 1: the normalised gates)
  EXPECT_LT(maxdiff(sharpen(z, {"power", 2.0, 0, false}), torch::tensor({0.623788, 0.291792, 0.084421}, at::kDouble)),
            1e-6);
  EXPECT_LT(maxdiff(sharpen(z, {"power", 1.0, 0, false}), torch::tensor({0.487372, 0.333333, 0.179294}, at::kDouble)),
            1e-6);
  EXPECT_GT(maxdiff(sharpen(z, {"power", 2.0, 0, false}), sm), 0.2);
  EXPECT_LT(maxdiff(sharpen(z, {"power", 2.0, 2, false}), torch::tensor({0.681304, 0.318696, 0.0}, at::kDouble)),
            1e-6);
  torch::manual_seed(0);
  auto r = torch::randn({50, 7}, at::kDouble);
  auto g = at::sigmoid(r).pow(3.5);
  EXPECT_LT(maxdiff(sharpen(r, {"power", 3.5, 0, false}), g / g.sum(-1, true)), 1e-12);
  // straight-through: forward = top-k, gradient = that of the dense rows
  auto za = z.clone().requires_grad_(true), zb = z.clone().requires_grad_(true);
  auto st = sharpen(za, {"softmax", 2.0, 2, true});
  EXPECT_LT(maxdiff(st, t2), 1e-12);
  auto w = torch::tensor({0.3, -1.0, 2.0}, at::kDouble);
  (st * w).sum().backward();
  (sharpen(zb, {"softmax", 2.0, 0, false}) * w).sum().backward();
  EXPECT_LT(maxdiff(za.grad(), zb.grad()), 1e-12);
  // self-loop forbidden: -inf logit gets weight 0 in every mode
  auto zs = torch::tensor({1.0, -std::numeric_limits<double>::infinity(), 0.5}, at::kDouble);
  for (auto mode : {"softmax", "power", "sigmoid"}) EXPECT_EQ(sharpen(zs, {mode, 1.0, 0, false})[1].item<double>(), 0.0);
  EXPECT_EQ(sharpen(zs, {"power", 2.0, 0, false, "softmax"})[1].item<double>(), 0.0);
  // hardening keeps the row's mass; the largest entry always survives
  auto hd = harden(sm, 1, 0.0);
  EXPECT_LT(maxdiff(hd, torch::tensor({1.0, 0.0, 0.0}, at::kDouble)), 1e-12);
  auto th = harden(sm, 0, 0.1);
  EXPECT_NEAR(th.sum().item<double>(), 1.0, 1e-12);
  EXPECT_EQ(th[2].item<double>(), 0.0);
  EXPECT_NEAR(harden(torch::tensor({0.2, 0.3}, at::kDouble), 0, 0.9)[1].item<double>(), 0.5, 1e-12);
}

TEST(HModelRouting, AggregationVector) {
  // h_1 = [2, 0] (weight 0.5), h_2 = [0, 4] (weight 0.25) into one target
  auto C = torch::tensor({0.5, 0.25}, at::kDouble).view({1, 1, 2, 1});
  std::vector<at::Tensor> H{torch::tensor({2.0, 0.0}, at::kDouble).view({1, 1, 2}),
                            torch::tensor({0.0, 4.0}, at::kDouble).view({1, 1, 2})};
  auto m = aggregate(C, H, 0.0);
  auto X = [&](const std::string& norm) { return normalise_messages(m.M.select(-2, 0), m.n, m.w, norm).view({2}); };
  EXPECT_LT(maxdiff(X("count"), torch::tensor({0.5, 0.5}, at::kDouble)), 1e-12);
  EXPECT_LT(maxdiff(X("weighted"), torch::tensor({4.0 / 3, 4.0 / 3}, at::kDouble)), 1e-6);
  EXPECT_LT(maxdiff(X("none"), torch::tensor({1.0, 1.0}, at::kDouble)), 1e-12);
  // tau: a weight at or below it is no contributor
  EXPECT_EQ(aggregate(C, H, 0.3).n.item<double>(), 1.0);
}

TEST(HModelMetrics, WalkDepthAndJsVectors) {
  // L = 2: IN -> 1 (1.0); 1 -> 2 (0.5), 1 -> OUT (0.5); 2 -> OUT (1.0)
  auto step = [](std::vector<std::tuple<int, int, double>> e) {
    auto C = torch::zeros({3, 3}, at::kDouble);
    for (auto [i, k, v] : e) C[i][k] = v;
    return C;
  };
  std::vector<at::Tensor> Cs{step({{0, 0, 1.0}}), step({{1, 1, 0.5}, {1, 2, 0.5}}), step({{2, 2, 1.0}})};
  auto rho = torch::tensor({1.0, 0.0, 0.0}, at::kDouble);
  std::vector<at::Tensor> e;
  for (auto& C : Cs) {
    auto [ex, next] = walk_step(rho, C);
    e.push_back(ex);
    rho = next;
  }
  EXPECT_NEAR(e[0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(e[1].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(e[2].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(expected_depth(e).item<double>(), 1.5, 1e-12);
  EXPECT_NEAR(expected_depth({e[0], e[1]}).item<double>(), 1.0, 1e-12);  // T = 1
  auto p = torch::tensor({0.7, 0.2, 0.1}, at::kDouble), q = torch::tensor({0.1, 0.2, 0.7}, at::kDouble);
  EXPECT_NEAR(js_divergence(p, q).item<double>(), 0.365148, 1e-6);
  EXPECT_NEAR(js_divergence(p, p).item<double>(), 0.0, 1e-12);
  // the same walk through a model trace (fixed routing) and RouteStats
  auto m = make_hmodel("f2", {{"T", 2}});
  m->fixed_routing = Cs;
  RouteRecorder rec;
  torch::NoGradGuard ng;
  m->forward(torch::randn({2, 5, 32}, at::kDouble));
  ASSERT_EQ(rec.traces.size(), 1u);
  RouteStats s;
  s.add(rec.traces[0]);
  EXPECT_NEAR(s.expected_depth(), 1.5, 1e-12);
  auto prof = s.exit_profile();
  EXPECT_NEAR(prof[1], 0.5, 1e-12);
  EXPECT_NEAR(s.usage()[0], 1.0, 1e-12);  // layer 1 visited once
  EXPECT_NEAR(s.usage()[1], 0.5, 1e-12);
  EXPECT_NEAR(s.call_rate()[1], 0.5, 1e-12);  // layer 2 active at iteration 2 only
  auto flow = s.collapsed_flow();
  EXPECT_NEAR(flow[1][1], 0.5, 1e-12);  // 1 -> 2
  EXPECT_NEAR(flow[2][2], 0.5, 1e-12);  // 2 -> OUT
}

TEST(HModelMetrics, CompareRoutesHandValues) {
  // Two fixed routings (L = 2, T = 1) that differ only in IN's row at step 0:
  // JS([0.7, 0.2, 0.1], [0.1, 0.2, 0.7]) = 0.365148 there, 0 for the layers' rows at step 1.
  auto stats_of = [](std::vector<double> in_row) {
    auto m = make_hmodel("f2", {{"T", 1}});
    auto r0 = torch::zeros({3, 3}, at::kDouble), r1 = r0.clone();
    r0[0] = torch::tensor(in_row, at::kDouble);
    r1[1][2] = 1.0, r1[2][2] = 1.0;
    m->fixed_routing = {r0, r1};
    RouteRecorder rec;
    torch::NoGradGuard ng;
    m->forward(torch::randn({2, 3, 32}, at::kDouble));
    RouteStats s;
    s.add(rec.traces.at(0));
    return s;
  };
  auto a = stats_of({0.7, 0.2, 0.1}), b = stats_of({0.1, 0.2, 0.7});
  auto c = compare_routes(a, b);
  EXPECT_NEAR(c.js[0][0], 0.365148, 1e-6);
  EXPECT_NEAR(c.js[1][1], 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(c.js[0][1]) && std::isnan(c.js[1][0]));  // no such sender at that step
  // weights = mean occupancy of the two sets: IN at step 0: 1; layer 1: (0.7 + 0.1) / 2; layer 2: 0.2
  EXPECT_NEAR(c.weighted, 0.365148 / (1.0 + 0.4 + 0.2), 1e-6);
  EXPECT_NEAR(c.plain, 0.365148 / 3, 1e-6);
}

TEST(HModelMetrics, HaltedTraceDepthCountsTheRestAtT) {
  // L = 2, T = 3. Step 0: IN -> OUT 0.6, IN -> 1 0.4; step 1: 1 -> OUT 0.999, 1 -> 2 0.001;
  // steps 2, 3: 2 -> OUT. After step 1 the walk's remaining mass is 0.4 * 0.001 = 4e-4 < halt_eps.
  auto m = make_hmodel("f2", {{"T", 3}, {"infer", {{"halt_eps", 1e-3}}}});
  auto C = [](std::vector<std::tuple<int, int, double>> e) {
    auto c = torch::zeros({3, 3}, at::kDouble);
    for (auto [i, k, v] : e) c[i][k] = v;
    return c;
  };
  m->fixed_routing = {C({{0, 2, 0.6}, {0, 0, 0.4}}), C({{1, 2, 0.999}, {1, 1, 0.001}}), C({{2, 2, 1.0}}),
                      C({{2, 2, 1.0}})};
  m->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 3, 32}, at::kDouble);
  auto depth = [&] {
    RouteRecorder rec;
    m->forward(x);
    RouteStats s;
    s.add(rec.traces.at(0));
    return std::pair{s.expected_depth(), rec.traces.at(0).steps.size()};
  };
  auto [halted, steps] = depth();
  EXPECT_EQ(steps, 2u);  // stopped after step 1
  EXPECT_EQ(m->stats.halted, 1);
  EXPECT_EQ(m->stats.halted_rows, 2 * 3);
  // e = [0.6, 0.3996, 0, 0]: 1 * 0.3996 + T * 4e-4 (the rest counts at T = 3, not at step 1)
  EXPECT_NEAR(halted, 0.3996 + 3 * 4e-4, 1e-12);
  m->cfg.halt_eps = 0;  // not halted: the rest exits at step 2
  EXPECT_NEAR(depth().first, 0.3996 + 2 * 4e-4, 1e-12);
}

TEST(HModelWiring, ChainEqualsPlainStack) {
  // One-hot routing IN -> 1 -> ... -> L -> OUT with T = L is the plain stack, bit-exactly (fp64).
  torch::manual_seed(3);
  for (auto norm : {"count", "weighted", "none"}) {
    auto m = make_hmodel("T1m1f1g1", {{"routing", {{"norm", norm}}}});
    const int L = m->L;
    m->fixed_routing = chain_routing(L, L);
    torch::NoGradGuard ng;
    auto x = torch::randn({2, 7, 32}, at::kDouble);
    EXPECT_EQ(maxdiff(m->forward(x), plain_stack(*m, x)), 0.0) << norm;
  }
  // The same through the heads: chain init + top-1 routing makes the rows exactly one-hot.
  auto m = make_hmodel("T1m1f1g1", {{"routing", {{"topk", 1}}}, {"head", {{"init", "chain"}}}});
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 7, 32}, at::kDouble);
  EXPECT_EQ(maxdiff(m->forward(x), plain_stack(*m, x)), 0.0);
  EXPECT_EQ(m->stats.calls, 2 * 4);  // each node ran once per row
  EXPECT_EQ(m->stats.calls_dense, 2 * 4 * 4);
}

TEST(HModelWiring, HardenedChainLongerThanThePool) {
  // T > L with one-hot chain routing: everything reaches OUT after L steps and the
  // remaining iterations have no sender at all (bench_hmodel hit this on an E1 model).
  torch::manual_seed(6);
  for (auto gran : {"per_token", "per_sequence"}) {
    auto m = make_hmodel("T1m1f1g1", {{"T", 7}, {"routing", {{"topk", 1}, {"granularity", gran}}},
                                      {"head", {{"init", "chain"}}}});
    torch::NoGradGuard ng;
    auto x = torch::randn({2, 7, 32}, at::kDouble);
    EXPECT_EQ(maxdiff(m->forward(x), plain_stack(*m, x)), 0.0) << gran;
    EXPECT_EQ(m->stats.calls, 2 * 4) << gran;
    EXPECT_EQ(m->stats.calls_dense, 2 * 4 * 7) << gran;
  }
  // and step decode (where the empty steps still feed the stateful layers zeros) equals the forward
  ByteLM lm(ModelConfig::from_json(
      hm_lm_config("T1m1f1g1", {{"T", 7}, {"routing", {{"topk", 1}}}, {"head", {{"init", "chain"}}}}), "t"));
  lm.eval();
  torch::NoGradGuard ng;
  auto ids = torch::randint(0, 256, {2, 9}, at::kLong);
  auto full = lm.forward(ids);
  auto st = lm.new_state(2);
  lm.forward(ids.narrow(1, 0, 3), &st);
  for (int64_t t = 3; t < 9; ++t) EXPECT_LT(maxdiff(lm.step(ids.select(1, t), st), full.select(1, t)), 1e-5) << t;
}

TEST(HModelWiring, UniformOneIterationIsTheEnsemble) {
  torch::manual_seed(4);
  for (auto norm : {"count", "weighted"}) {
    auto m = make_hmodel("T1m1f1g1", {{"T", 1}, {"routing", {{"norm", norm}}}});
    const int L = m->L;
    const double wgt = std::string(norm) == "count" ? 1.0 : 1.0 / L;
    auto r0 = torch::zeros({L + 1, L + 1}, at::kDouble), r1 = r0.clone();
    r0[0].narrow(0, 0, L).fill_(wgt);
    r1.narrow(0, 1, L).select(1, L).fill_(wgt);
    m->fixed_routing = {r0, r1};
    torch::NoGradGuard ng;
    auto x = torch::randn({2, 6, 32}, at::kDouble);
    auto ens = torch::zeros_like(x);
    for (auto& n : m->nodes) ens = ens + n->layer->forward(x);
    EXPECT_LT(maxdiff(m->forward(x), m->rmsnorm->forward(ens / L)), 1e-12) << norm;
  }
}

TEST(HModelWiring, ReadoutModes) {
  torch::manual_seed(5);
  auto x = torch::randn({1, 5, 32}, at::kDouble);
  torch::NoGradGuard ng;
  // node:k reads layer k after iteration T
  auto m = make_hmodel("f3", {{"T", 3}, {"readout", {{"mode", "node:3"}}}});
  m->fixed_routing = chain_routing(3, 3);
  EXPECT_EQ(maxdiff(m->forward(x), plain_stack(*m, x)), 0.0);
  // last: only step T reaches OUT; with a chain that sends IN -> OUT at step 0 as well, accumulate differs
  auto a = make_hmodel("f1", {{"T", 1}, {"readout", {{"mode", "last"}}}});
  auto r0 = torch::zeros({2, 2}, at::kDouble), r1 = r0.clone();
  r0[0][0] = 1.0, r0[0][1] = 1.0, r1[1][1] = 1.0;
  a->fixed_routing = {r0, r1};
  auto h1 = a->nodes[0]->layer->forward(x);
  EXPECT_LT(maxdiff(a->forward(x), a->rmsnorm->forward(h1)), 1e-12);
  a->cfg.readout = "accumulate";
  EXPECT_LT(maxdiff(a->forward(x), a->rmsnorm->forward((x + h1) / 2)), 1e-12);
  // flush_last: every active output at step T goes to OUT with weight 1
  auto f = make_hmodel("f2", {{"T", 1}, {"readout", {{"flush_last", true}}}});
  f->input_head->proj->bias.fill_(0.0);
  f->input_head->proj->weight.fill_(0.0);
  auto y = f->forward(x);
  // IN sends 1/3 to each of the 2 layers and to OUT: one contributor each
  auto ref = (x / 3.0 + f->nodes[0]->layer->forward(x / 3.0) + f->nodes[1]->layer->forward(x / 3.0)) / 3.0;
  EXPECT_LT(maxdiff(y, f->rmsnorm->forward(ref)), 1e-12);
}

TEST(HModelWiring, SparseEqualsDense) {
  torch::manual_seed(6);
  torch::NoGradGuard ng;
  auto x = torch::randn({3, 8, 32}, at::kDouble);
  // per-sequence top-1 routing: each node runs on a strict subset of the examples (gather, run,
  // scatter), and the scattered rows must land where the dense run puts them
  auto m = make_hmodel("T1m1f1g1", {{"T", 3}, {"routing", {{"topk", 1}, {"granularity", "per_sequence"}}}});
  for (auto& kv : m->named_parameters())  // routing driven by the input, not by the biases
    if (kv.key().find("head.proj.weight") != std::string::npos) kv.value().normal_(0.0, 1.0);
    else if (kv.key().find("head.proj.bias") != std::string::npos) kv.value().zero_();
  auto xs = torch::randn({6, 5, 32}, at::kDouble);
  RouteRecorder rec;
  auto sparse = m->forward(xs);
  // IN's top-1 target at step 0 differs between examples: some node runs on a strict subset
  auto first = std::get<1>(rec.traces.at(0).steps.at(0).C.select(-2, 0).max(-1)).reshape({-1});
  EXPECT_GT(std::get<0>(at::_unique(first)).size(0), 1);
  EXPECT_GT(m->stats.calls, 0);
  EXPECT_LE(m->stats.calls, 6 * 3);  // at most one node per example and iteration: 3 of 12 per row
  EXPECT_EQ(m->stats.calls_dense, 6 * 12);
  m->cfg.sparse = false;
  EXPECT_LT(maxdiff(sparse, m->forward(xs)), 1e-12);  // a gathered batch may round differently
  // top-2 routing in the model: nodes skip rows/positions, same result
  auto k = make_hmodel("T1m1f1g1", {{"T", 3}, {"routing", {{"topk", 2}}}}, true);
  auto ks = k->forward(x);
  const auto run = k->stats.calls, pos = k->stats.positions;
  k->cfg.sparse = false;
  EXPECT_LT(maxdiff(ks, k->forward(x)), 1e-12);
  EXPECT_LE(run, k->stats.calls_dense / 2);
  EXPECT_LT(pos, k->stats.positions_dense);
  // hardening at inference: fewer calls than dense soft routing
  auto hcfg = json{{"T", 3}, {"infer", {{"topk", 1}}}};
  auto hm = make_hmodel("T1m1f1g1", hcfg, true);
  hm->eval();
  hm->forward(x);
  EXPECT_LT(hm->stats.calls, hm->stats.calls_dense);
}

TEST(HModelWiring, PerSequencePaddingEqualsAlone) {
  torch::manual_seed(7);
  auto m = make_hmodel("T1m1g1", {{"T", 2}, {"routing", {{"granularity", "per_sequence"}, {"topk", 2}}}}, true);
  torch::NoGradGuard ng;
  const int64_t S = 9;
  auto x = torch::randn({2, S, 32}, at::kDouble);
  auto y = m->forward(x, nullptr, torch::tensor({S, S - 4}, at::kLong));
  auto alone = m->forward(x.narrow(0, 1, 1).narrow(1, 0, S - 4));
  EXPECT_LT(maxdiff(y.narrow(0, 1, 1).narrow(1, 0, S - 4), alone), 1e-12);
  RouteRecorder rec;
  m->forward(x);
  EXPECT_EQ(rec.traces.at(0).steps.at(0).C.size(1), 1);  // one routing row per example
  // the classification path: embeddings -> backbone with lengths (no LM head)
  ByteLM c(ModelConfig::from_json(hm_config("T1m1g1", {{"T", 2}, {"routing", {{"granularity", "per_sequence"}}}}), "t"));
  randomise_heads(*find_hmodel(c));
  auto ids = torch::randint(0, 256, {2, S}, at::kLong);
  auto yb = c.backbone->forward(c.embeddings->forward(ids), torch::tensor({S, S - 4}, at::kLong), nullptr);
  auto ya = c.backbone->forward(c.embeddings->forward(ids.narrow(0, 1, 1).narrow(1, 0, S - 4)), {}, nullptr);
  EXPECT_LT(maxdiff(yb.narrow(0, 1, 1).narrow(1, 0, S - 4), ya), 1e-5);
  StackState st = m->new_state(1, at::kDouble);
  EXPECT_THROW(m->step(x.select(1, 0).narrow(0, 0, 1), st), UserError);
}

TEST(HModelDecode, CausalAndStepEqualsForward) {
  torch::manual_seed(8);
  for (json h : {json{{"T", 3}}, json{{"T", 2}, {"routing", {{"topk", 2}, {"inject_input", true}}}},
                 json{{"T", 5}, {"routing", {{"sharpen", "sigmoid"}, {"tau", 0.3}, {"source_embed", true}}}}}) {
    ByteLM m(ModelConfig::from_json(hm_lm_config("T1m1f1g1", h), "t"));
    randomise_heads(*find_hmodel(m));
    m.eval();
    torch::NoGradGuard ng;
    const int64_t B = 3, L = 11;
    auto ids = torch::randint(0, 256, {B, L}, at::kLong);
    auto full = m.forward(ids);
    // causality: changing byte s leaves every position before s unchanged
    auto ids2 = ids.clone();
    ids2[0][6] = (ids[0][6].item<int64_t>() + 1) % 256;
    auto full2 = m.forward(ids2);
    EXPECT_EQ(maxdiff(full.narrow(1, 0, 6), full2.narrow(1, 0, 6)), 0.0) << h.dump();
    EXPECT_GT(maxdiff(full.narrow(1, 6, 1), full2.narrow(1, 6, 1)), 0.0);
    // prefill 4 bytes, step the rest
    auto st = m.new_state(B);
    auto pre = m.forward(ids.narrow(1, 0, 4), &st);
    EXPECT_LT(maxdiff(pre, full.narrow(1, 0, 4)), 1e-5) << h.dump();
    for (int64_t t = 4; t < L; ++t)
      EXPECT_LT(maxdiff(m.step(ids.select(1, t), st), full.select(1, t)), 1e-5) << h.dump() << " t=" << t;
    // forward in segments carrying the state (score) equals one forward
    auto seg = m.new_state(B);
    m.forward(ids.narrow(1, 0, 5), &seg);
    EXPECT_LT(maxdiff(m.forward(ids.narrow(1, 5, L - 5), &seg), full.narrow(1, 5, L - 5)), 1e-5) << h.dump();
    // a batch equals each sequence alone
    for (int64_t b = 0; b < B; ++b)
      EXPECT_LT(maxdiff(m.forward(ids.narrow(0, b, 1)), full.narrow(0, b, 1)), 1e-5) << h.dump();
  }
}

TEST(HModelDecode, HaltingStepEqualsForward) {
  // Halting (infer.halt_eps) per position, by the same rule in the full forward and in step
  // decode; the stateful nodes' later-iteration slots still see the zero inputs of a halted byte.
  torch::manual_seed(10);
  ByteLM m(ModelConfig::from_json(hm_lm_config("T1m1f1g1", {{"T", 3}}), "t"));
  auto* hm = find_hmodel(m);
  randomise_heads(*hm);
  m.eval();
  torch::NoGradGuard ng;
  const int64_t B = 2, S = 12;
  auto ids = torch::randint(0, 256, {B, S}, at::kLong);
  auto plain = m.forward(ids);
  // eps = the median of the walk's remaining mass after step 0: about half the positions halt there
  at::Tensor rest;
  {
    RouteRecorder rec;
    m.forward(ids);
    rest = (1.0 - rec.traces.at(0).steps.at(0).C.select(-2, 0).select(-1, hm->L)).reshape({-1});
  }
  auto sorted = std::get<0>(rest.sort());
  const double eps = 0.5 * (sorted[B * S / 2 - 1].item<double>() + sorted[B * S / 2].item<double>());
  hm->cfg.halt_eps = eps;
  hm->stats = {};
  auto full = m.forward(ids);
  EXPECT_GE(hm->stats.halted_rows, B * S / 2);  // half at step 0, some more later
  EXPECT_LT(hm->stats.halted_rows, B * S);
  EXPECT_EQ(hm->stats.halted, 0);  // not every position halted: all iterations ran
  EXPECT_GT(maxdiff(full, plain), 1e-3);
  // a position that halted at step 0 reads IN's message only: y = RMSNorm(c_IN,OUT x) there
  auto halted0 = (rest < eps).view({B, S});
  auto x = m.embeddings->forward(ids);
  auto y = m.backbone->forward(x, {}, nullptr);
  auto ref = hm->rmsnorm->forward(x * (1.0 - rest).view({B, S, 1}).to(x.scalar_type()));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < S; ++t)
      if (halted0[b][t].item<bool>()) {
        EXPECT_LT(maxdiff(y[b][t], ref[b][t]), 1e-5) << b << " " << t;
      }
  // step decode (prefill 3 bytes, then one at a time) and segments equal the forward
  auto st = m.new_state(B);
  EXPECT_LT(maxdiff(m.forward(ids.narrow(1, 0, 3), &st), full.narrow(1, 0, 3)), 1e-5);
  for (int64_t t = 3; t < S; ++t) EXPECT_LT(maxdiff(m.step(ids.select(1, t), st), full.select(1, t)), 1e-5) << t;
  auto seg = m.new_state(B);
  m.forward(ids.narrow(1, 0, 5), &seg);
  EXPECT_LT(maxdiff(m.forward(ids.narrow(1, 5, S - 5), &seg), full.narrow(1, 5, S - 5)), 1e-5);
}

TEST(HModelDecode, InsideAnHNetStepEqualsForward) {
  torch::manual_seed(9);
  ByteLM m(ModelConfig::from_json(hnet_hm_config("T1f1g1", 48, {{"T", 2}, {"routing", {{"topk", 2}}}}), "t"));
  ASSERT_NE(find_hmodel(m), nullptr);
  m.eval();
  torch::NoGradGuard ng;
  const int64_t B = 2, L = 14;
  auto ids = torch::randint(0, 256, {B, L}, at::kLong);
  auto full = m.forward(ids);
  auto st = m.new_state(B);
  m.forward(ids.narrow(1, 0, 3), &st);
  for (int64_t t = 3; t < L; ++t) EXPECT_LT(maxdiff(m.step(ids.select(1, t), st), full.select(1, t)), 1e-5) << t;
}

// Classification task path: config section, cls_head, padding invariance,
// labeled JSONL loader, deterministic sampling, training + exact resume.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/corpus.h"
#include "data/labeled.h"
#include "data/reasoning.h"
#include "io/safetensors.h"
#include "train/classify_objective.h"
#include "run/checkpoint.h"
#include "train/trainer.h"
#include "test_util.h"

using namespace dynarch;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using dynarch::testing::temp_dir;

json classifier_json(const std::string& layout = R"(["T1m1"])") {
  auto j = json::parse(R"({"d_model": [32], "d_intermediate": [64],
    "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8}, "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]},
    "task": {"type": "classify", "num_classes": 3, "labels": ["True", "False", "Unknown"]}})");
  j["arch_layout"] = json::parse(layout);
  return j;
}

json hnet_classifier_json() {
  auto j = json::parse(R"({"arch_layout": ["m2", ["T2"], "m2"], "d_model": [32, 48], "d_intermediate": [0, 128],
      "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 16},
      "attn_cfg": {"num_heads": [2, 4], "rotary_emb_dim": [8, 8], "window_size": [-1, -1]},
      "task": {"type": "classify", "num_classes": 2}})");
  return j;
}

void expect_config_error(const json& j, const std::string& needle) {
  try {
    ModelConfig::from_json(j, "cfg.json");
    ADD_FAILURE() << "no error; wanted one mentioning " << needle;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

}  // namespace

TEST(ClassifyConfig, ParsesValidatesAndRoundTrips) {
  auto c = ModelConfig::from_json(classifier_json(), "cfg.json");
  EXPECT_TRUE(c.task.classify());
  EXPECT_EQ(c.task.num_classes, 3);
  EXPECT_EQ(c.task.labels[2], "Unknown");
  auto back = ModelConfig::from_json(c.to_json(), "round trip");
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(back.task.labels, c.task.labels);
  // labels default to class indices; an LM config writes no task section
  auto h = ModelConfig::from_json(hnet_classifier_json(), "h");
  EXPECT_EQ(h.task.labels, (std::vector<std::string>{"0", "1"}));
  auto lm = classifier_json();
  lm.erase("task");
  EXPECT_FALSE(ModelConfig::from_json(lm, "lm").to_json().contains("task"));
  lm["task"] = {{"type", "lm"}};
  EXPECT_FALSE(ModelConfig::from_json(lm, "lm").task.classify());

  auto bad = classifier_json();
  bad["task"]["num_classes"] = 1;
  expect_config_error(bad, "task.num_classes must be >= 2");
  bad = classifier_json();
  bad["task"]["num_classes"] = 2;
  expect_config_error(bad, "task.labels has 3 names, num_classes is 2");
  bad = classifier_json();
  bad["task"]["type"] = "regress";
  expect_config_error(bad, "unknown task type \"regress\"");
  bad = classifier_json();
  bad["task"]["classes"] = 3;
  expect_config_error(bad, "cfg.json: task: unknown field \"classes\"");
  bad = classifier_json();
  bad["task"]["labels"] = {"a", "a", "b"};
  expect_config_error(bad, "distinct");
  bad = classifier_json();
  bad["task"].erase("num_classes");
  expect_config_error(bad, "task.num_classes: missing");
  bad = classifier_json();
  bad["task"] = {{"type", "lm"}, {"num_classes", 3}};
  expect_config_error(bad, "classify");
  bad = classifier_json();
  bad["task"]["pool"] = "max";
  expect_config_error(bad, "task.pool: unknown pooling \"max\"");
  EXPECT_EQ(c.task.pool, "mean");
  auto last = classifier_json();
  last["task"]["pool"] = "last";
  EXPECT_EQ(ModelConfig::from_json(ModelConfig::from_json(last, "l").to_json(), "rt").task.pool, "last");
}

// pool = last: the logits come from the last valid position only, with padding too.
TEST(ClassifyHead, LastPoolingReadsTheLastValidPosition) {
  torch::manual_seed(4);
  auto j = classifier_json();
  j["task"]["pool"] = "last";
  ByteLM m(ModelConfig::from_json(j, "c"));
  m.to(at::kDouble);
  m.eval();
  torch::NoGradGuard ng;
  const std::vector<int64_t> lens{5, 12, 1};
  auto ids = torch::randint(0, 256, {3, 12}, at::kLong);
  auto batch = m.classify(ids, torch::tensor(lens, at::kLong));
  for (int64_t r = 0; r < 3; ++r) {
    auto x = ids.narrow(0, r, 1).narrow(1, 0, lens[r]);
    auto h = m.backbone->forward(m.embeddings->forward(x).to(at::kDouble), {}, nullptr);
    auto ref = m.cls_head->forward(h.select(1, lens[r] - 1));
    EXPECT_LT(maxdiff(ref, batch.narrow(0, r, 1)), 1e-12) << "row " << r;
  }
  // and differs from the mean pooling of the same weights
  j["task"]["pool"] = "mean";
  m.config = ModelConfig::from_json(j, "c");
  EXPECT_GT(maxdiff(m.classify(ids, torch::tensor(lens, at::kLong)), batch), 1e-6);
}

TEST(ClassifyHead, ShapesNamesAndNoLmPath) {
  torch::manual_seed(0);
  ByteLM m(ModelConfig::from_json(classifier_json(), "c"));
  auto p = m.named_parameters();
  ASSERT_TRUE(p.contains("cls_head.weight"));
  EXPECT_EQ(p["cls_head.weight"].sizes(), (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(p["cls_head.bias"].sizes(), (std::vector<int64_t>{3}));
  EXPECT_EQ(p["cls_head.bias"].abs().max().item<double>(), 0.0);
  EXPECT_FALSE(p.contains("lm_head.weight"));
  bool bias_decays = true;
  for (auto& pi : m.param_infos())
    if (pi.name == "cls_head.bias") bias_decays = pi.weight_decay;
  EXPECT_FALSE(bias_decays);
  auto ids = torch::randint(0, 256, {4, 11}, at::kLong);
  auto logits = m.classify(ids, {});
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  EXPECT_THROW(m.forward(ids), UserError);
  ByteLM lm(ModelConfig::from_json(json::parse(R"({"arch_layout": ["T1"], "d_model": [32], "d_intermediate": [64],
                                                     "attn_cfg": {"num_heads": [2]}})"), "l"));
  EXPECT_THROW(lm.classify(ids, {}), UserError);
}

// Logits of a row depend only on its valid positions: alone (no padding) and
// in a batch of mixed lengths with arbitrary bytes in the padding agree.
class ClassifyPadding : public ::testing::TestWithParam<bool> {};

TEST_P(ClassifyPadding, BatchOfMixedLengthsEqualsEachAlone) {
  const bool hnet = GetParam();
  torch::manual_seed(1);
  ByteLM m(ModelConfig::from_json(hnet ? hnet_classifier_json() : classifier_json(), "c"));
  m.to(at::kDouble);
  m.eval();
  torch::NoGradGuard ng;
  const std::vector<int64_t> lens{7, 30, 1, 19};
  const int64_t B = lens.size(), L = 30;
  auto ids = torch::randint(0, 256, {B, L}, at::kLong);  // padding = random bytes, not zeros
  auto lengths = torch::tensor(lens, at::kLong);
  auto batch = m.classify(ids, lengths);
  ASSERT_EQ(batch.scalar_type(), at::kDouble);
  for (int64_t r = 0; r < B; ++r) {
    auto alone = m.classify(ids.narrow(0, r, 1).narrow(1, 0, lens[r]), {});
    EXPECT_LT(maxdiff(alone, batch.narrow(0, r, 1)), 1e-9) << "row " << r;
  }
  // and the masked mean is the mean of the per-position features
  auto h = m.backbone->forward(m.embeddings->forward(ids.narrow(0, 0, 1).narrow(1, 0, 7)).to(at::kDouble), {},
                               nullptr);
  auto ref = m.cls_head->forward(h.mean(1));
  EXPECT_LT(maxdiff(ref, batch.narrow(0, 0, 1)), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(IsotropicAndHNet, ClassifyPadding, ::testing::Values(false, true));

TEST(Labeled, LoaderReadsItemsAndNamesBadLines) {
  auto d = temp_dir("cls_loader");
  const std::vector<std::string> labels{"True", "False", "Unknown"};
  write(d / "ok.jsonl", R"({"theory": "Anne is big.", "question": "Anne is big.", "label": "True", "depth": 0}

{"text": "xyz", "label": 2, "depth": 3}
{"text": "é", "label": "False"}
)");
  auto s = load_labeled((d / "ok.jsonl").string(), labels);
  ASSERT_EQ(s.size(), 3);
  EXPECT_EQ(s.items[0].text, "Anne is big.\nQ: Anne is big.");
  EXPECT_EQ(s.items[1].label, 2);
  EXPECT_EQ(s.items[1].group, "3");
  EXPECT_EQ(s.items[1].line, 3);
  EXPECT_EQ(s.items[2].group, "-");
  auto b = make_cls_batch(s, {1, 2});
  EXPECT_EQ(b.ids.sizes(), (std::vector<int64_t>{2, 4}));  // BOS + 3 bytes; "é" is 2 bytes
  EXPECT_EQ(b.ids[0][0].item<int64_t>(), kBOS);
  EXPECT_EQ(b.ids[0][1].item<int64_t>(), 'x');
  EXPECT_EQ(b.ids[1][1].item<int64_t>(), 0xC3);
  EXPECT_EQ(b.ids[1][3].item<int64_t>(), 0);  // padding
  EXPECT_EQ(b.lengths[1].item<int64_t>(), 3);
  EXPECT_EQ(b.labels[1].item<int64_t>(), 1);
  EXPECT_NO_THROW(s.check_fits(29, "--seq-len"));
  try {
    s.check_fits(10, "--seq-len");
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("ok.jsonl:1: input is 28 bytes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--seq-len"), std::string::npos);
  }

  auto expect_error = [&](const std::string& content, const std::string& needle) {
    write(d / "bad.jsonl", content);
    try {
      load_labeled((d / "bad.jsonl").string(), labels);
      ADD_FAILURE() << "no error for " << content;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string good = R"({"text": "a", "label": "True"})";
  expect_error(good + "\n" + good + "\n{\"text\": \"a\", ", "bad.jsonl:3: not valid JSON");
  expect_error(good + "\n{\"text\": \"a\"}\n", "bad.jsonl:2: missing field \"label\"");
  expect_error(R"({"text": "a", "label": "Maybe"})", "bad.jsonl:1: label \"Maybe\" is not one of the model's labels (True, False, Unknown)");
  expect_error(R"({"text": "a", "label": 3})", "bad.jsonl:1: label 3 is neither");
  expect_error(R"({"theory": "a", "label": "True"})", "bad.jsonl:1: needs a \"text\" field");
  expect_error(R"({"text": 5, "label": "True"})", "bad.jsonl:1: field \"text\" must be a string");
  expect_error("[1, 2]", "bad.jsonl:1: expected a JSON object");
  expect_error("\n", "holds no items");
  EXPECT_THROW(load_labeled((d / "none.jsonl").string(), labels), UserError);
}

TEST(Labeled, EpochSamplerIsAPureFunctionOfTheCounter) {
  EpochSampler a(10, 5), b(10, 5), c(10, 6);
  std::vector<int64_t> first;
  for (int64_t i = 0; i < 10; ++i) first.push_back(a.at(i));
  auto sorted = first;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[i], i);  // one epoch = a permutation
  EXPECT_EQ(b.at(25), a.at(25));
  EXPECT_EQ(b.at(3), first[3]);  // random access in any order
  std::vector<int64_t> other;
  for (int64_t i = 0; i < 10; ++i) other.push_back(c.at(i));
  EXPECT_NE(other, first);
  // micro-batches of a step follow each other in the stream
  auto m1 = a.batch(2, 1, 2, 3);
  EXPECT_EQ(m1, (std::vector<int64_t>{b.at(15), b.at(16), b.at(17)}));
  EXPECT_EQ(spread_indices(10, 4), (std::vector<int64_t>{0, 2, 5, 7}));
  EXPECT_EQ(spread_indices(3, 8).size(), 3u);
}

TEST(ClassifyTrain, LearnsResumesBitExactlyAndEvaluates) {
  auto d = temp_dir("cls_train");
  reasoning::GenOptions g;
  g.max_depth = 1;
  reasoning::write_dataset((d / "data").string(), g, 12, 4);
  auto cfg = ModelConfig::from_json(classifier_json(R"(["T1"])"), "c");
  auto opts = [&](const std::string& out) {
    return TrainOptions::from_json({{"data", (d / "data").string()}, {"out", (d / out).string()}, {"steps", 6},
                                    {"batch", 4}, {"accum", 2}, {"seq_len", 1025}, {"lr", 3e-3}, {"eval_every", 3},
                                    {"eval_windows", 5}},
                                   "test options");
  };
  RunControl quiet{1, false, -1};
  auto full = train_new(opts("a"), cfg, quiet);
  ASSERT_EQ(full.losses.size(), 6u);
  EXPECT_GE(full.val_acc, 0.0);
  RunControl crash{1, false, 2};
  auto first = train_new(opts("b"), cfg, crash);
  ASSERT_EQ(first.losses.size(), 2u);
  auto second = train_resume(opts("b").out, quiet);
  ASSERT_EQ(second.losses.size(), 4u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(first.losses[i], full.losses[i]) << i;
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(second.losses[i], full.losses[2 + i]) << i;
  EXPECT_EQ(second.val_acc, full.val_acc);
  auto ma = load_model(opts("a").out), mb = load_model(opts("b").out);
  EXPECT_TRUE(ma->config.task.classify());
  for (auto& kv : ma->named_parameters()) EXPECT_TRUE(kv.value().equal(mb->named_parameters()[kv.key()])) << kv.key();
  std::ifstream m(fs::path(opts("b").out) / "metrics.jsonl");
  int train_lines = 0, val_lines = 0;
  for (std::string line; std::getline(m, line);) {
    auto j = json::parse(line);
    train_lines += j.contains("loss") && j.contains("acc") && j.contains("examples_per_s");
    val_lines += j.contains("val_acc");
  }
  EXPECT_EQ(train_lines, 6);
  EXPECT_EQ(val_lines, 2);

  // evaluation: batching does not change the result; breakdowns add up
  auto test = load_labeled((d / "data" / "test.jsonl").string(), cfg.task.labels);
  auto e1 = evaluate_classifier(*ma, test, {}, 1, false), e7 = evaluate_classifier(*ma, test, {}, 7, false);
  EXPECT_EQ(e1.correct, e7.correct);
  EXPECT_NEAR(e1.nll, e7.nll, 1e-4);
  EXPECT_EQ(e1.n, 8);
  ASSERT_EQ(e1.by_group.size(), 2u);
  EXPECT_EQ(e1.by_group["0"][1] + e1.by_group["1"][1], 8);
  auto j = e1.to_json();
  EXPECT_EQ(j["by_label"]["Unknown"]["n"], e1.by_label[2][1]);
  EXPECT_TRUE(j.contains("by_depth"));

  // a classifier needs the JSONL directory; inputs longer than --seq-len are named
  auto o = opts("c");
  o.data = (d / "data" / "train.jsonl").string();
  EXPECT_THROW(train_new(o, cfg, quiet), UserError);
  o = opts("d");
  o.seq_len = 64;
  try {
    train_new(o, cfg, quiet);
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("train.jsonl:"), std::string::npos) << e.what();
  }
}

// The head learns: "does the text contain the word not?" over random short
// word sequences (mean pooling must pick one word out of up to 13).
TEST(ClassifyTrain, LearnsAnEasyTask) {
  auto d = temp_dir("cls_easy");
  fs::create_directories(d / "data");
  const char* words[] = {"anne", "bob", "is", "big", "red", "cat", "the", "dog", "kind", "nice", "cold"};
  uint64_t x = 11;
  for (auto [split, n] : {std::pair{"train", 1000}, std::pair{"test", 200}}) {
    std::ofstream f(d / "data" / (std::string(split) + ".jsonl"));
    for (int i = 0; i < n; ++i) {
      std::string text;
      x = splitmix64(x);
      const bool yes = x & 1;
      const int len = 4 + (int)((x >> 8) % 9), at = (int)((x >> 20) % len);
      for (int w = 0; w < len; ++w) {
        x = splitmix64(x);
        text += std::string(text.empty() ? "" : " ") + (yes && w == at ? "not" : words[x % 11]);
      }
      f << json{{"text", text}, {"label", yes ? "yes" : "no"}}.dump() << "\n";
    }
  }
  auto j = classifier_json(R"(["T1"])");
  j["task"] = {{"type", "classify"}, {"num_classes", 2}, {"labels", {"no", "yes"}}};
  auto o = TrainOptions::from_json({{"data", (d / "data").string()}, {"out", (d / "run").string()}, {"steps", 100},
                                    {"batch", 16}, {"seq_len", 128}, {"lr", 3e-3}, {"eval_every", 0},
                                    {"eval_windows", 200}, {"save_every", 0}},
                                   "test options");
  auto r = train_new(o, ModelConfig::from_json(j, "c"), RunControl{1, false, -1});
  EXPECT_LT(r.losses.back(), 0.6);
  EXPECT_GT(r.val_acc, 0.75);
}

// One training loop for every objective: an H-Model classifier gets the
// model's auxiliary losses (hmodel.loss.*) and the alpha schedule, which the
// classifier loop before the restructure never set up.
TEST(ClassifyTrain, HModelClassifierGetsAuxLossesAndAlphaSchedule) {
  auto d = temp_dir("cls_hmodel");
  reasoning::GenOptions g;
  g.max_depth = 1;
  reasoning::write_dataset((d / "data").string(), g, 8, 2);
  auto config = [](double lambda_self) {
    auto j = classifier_json(R"(["T1f1"])");
    j["hmodel"] = {{"T", 2},
                   {"routing", {{"alpha", {{"schedule", "linear"}, {"start", 1}, {"end", 4}, {"steps", 3}}}}},
                   {"loss", {{"lambda_self", lambda_self}, {"lambda_depth", 0.1}}}};
    return ModelConfig::from_json(j, "c");
  };
  auto opts = [&](const std::string& out) {
    return TrainOptions::from_json({{"data", (d / "data").string()}, {"out", (d / out).string()}, {"steps", 3},
                                    {"batch", 4}, {"seq_len", 1025}, {"lr", 3e-3}, {"eval_every", 0},
                                    {"eval_windows", 4}, {"save_every", 0}, {"seed", 5}},
                                   "test options");
  };
  RunControl quiet{1, false, -1};
  train_new(opts("with"), config(1.0), quiet);
  std::ifstream m(fs::path(opts("with").out) / "metrics.jsonl");
  std::vector<json> lines;
  for (std::string line; std::getline(m, line);)
    if (auto j = json::parse(line); j.contains("loss")) lines.push_back(j);
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    for (auto k : {"hmodel_self", "hmodel_depth", "hmodel_ent", "hmodel_bal"})
      EXPECT_TRUE(lines[i].contains(k)) << k << " at step " << i + 1;
    EXPECT_DOUBLE_EQ(lines[i]["hmodel_alpha"].get<double>(), 1.0 + (double)i) << "alpha at step " << i + 1;
  }
  // The terms act: with lambda_self 0 the same data and seed give other weights.
  train_new(opts("without"), config(0.0), quiet);
  auto a = load_model(opts("with").out), b = load_model(opts("without").out);
  double diff = 0;
  auto pb = b->named_parameters();
  for (auto& kv : a->named_parameters())
    if (kv.key().find(".head.") != std::string::npos) diff = std::max(diff, maxdiff(kv.value(), pb[kv.key()]));
  EXPECT_GT(diff, 1e-6);
}

// --init-from: an LM's body goes into a classifier of the same layout (the LM head has
// no counterpart, the classifier head stays as initialised); a shape clash and a model
// with nothing in common fail instead of silently training from scratch.
TEST(InitFrom, CopiesSharedTensorsKeepsTheRestAndRejectsMismatches) {
  auto dir = temp_dir("init_from");
  auto lm_json = classifier_json();
  lm_json.erase("task");
  torch::manual_seed(3);
  ByteLM lm(ModelConfig::from_json(lm_json, "l"));
  save_weights((dir / "lm.safetensors").string(), lm);
  torch::manual_seed(4);
  ByteLM cls(ModelConfig::from_json(classifier_json(), "c"));
  const auto head_before = cls.named_parameters()["cls_head.weight"].clone();
  auto lp = lm.named_parameters();
  ASSERT_GT(maxdiff(lp["embeddings.weight"], cls.named_parameters()["embeddings.weight"]), 0.1);
  std::vector<std::string> kept;
  const int64_t n = init_weights_from((dir / "lm.safetensors").string(), cls, &kept);
  EXPECT_EQ(kept, (std::vector<std::string>{"cls_head.weight", "cls_head.bias"}));
  EXPECT_EQ(n, (int64_t)cls.named_parameters().size() - 2);
  EXPECT_EQ(n, (int64_t)lp.size() - 1);  // all but lm_head.weight
  for (auto& kv : cls.named_parameters()) {
    if (kv.key().rfind("cls_head.", 0) == 0) continue;
    EXPECT_EQ(maxdiff(kv.value(), lp[kv.key()]), 0.0) << kv.key();
  }
  EXPECT_EQ(maxdiff(cls.named_parameters()["cls_head.weight"], head_before), 0.0);
  auto wide = classifier_json();
  wide["d_model"] = json::array({48});
  ByteLM other(ModelConfig::from_json(wide, "w"));
  try {
    init_weights_from((dir / "lm.safetensors").string(), other);
    ADD_FAILURE() << "a shape clash must fail";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("has shape"), std::string::npos) << e.what();
  }
  io::save_safetensors((dir / "other.safetensors").string(), {{"unrelated.weight", torch::ones({2, 2})}}, {});
  try {
    init_weights_from((dir / "other.safetensors").string(), cls);
    ADD_FAILURE() << "weights with nothing in common must fail";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor"), std::string::npos) << e.what();
  }
}

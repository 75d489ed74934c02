// Reliability (issue #18): nothing lost, nothing silently wrong. Checkpoint
// integrity, strict weight loading, non-finite results, config and option
// checks, resume from any working directory.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "data/corpus.h"
#include "expect_error.h"
#include "infer/score.h"
#include "io/atomic_file.h"
#include "io/checksum.h"
#include "io/safetensors.h"
#include "run/checkpoint.h"
#include "test_util.h"
#include "train/lm_objective.h"
#include "train/metrics_log.h"
#include "train/trainer.h"

using namespace dynarch;
using dynarch::testutil::expect_error;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using dynarch::testing::temp_dir;

json tiny_json() {
  return json::parse(R"({"arch_layout": ["T1m1"], "d_model": [32], "d_intermediate": [64],
    "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8},
    "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]}})");
}
ModelConfig tiny_model() { return ModelConfig::from_json(tiny_json(), "tiny"); }

std::string write_corpus(const fs::path& dir) {
  std::string s;
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog"};
  for (uint64_t x = 7; s.size() < 12000;) s += std::string(words[(x = splitmix64(x)) % 8]) + " ";
  auto f = (dir / "corpus.txt").string();
  io::write_file_atomic(f, s);
  return f;
}

TrainOptions tiny_options(const fs::path& run, const std::string& data) {
  TrainOptions o;
  o.data = data;
  o.out = run.string();
  o.steps = 4;
  o.batch = 2;
  o.seq_len = 32;
  o.lr = 3e-3;
  o.eval_every = 2;
  o.eval_windows = 2;
  o.save_every = 0;
  return o;
}

const RunControl kQuiet{1, false, -1};

// A trained run stopped with a checkpoint at step 2 of 4.
fs::path trained_run(const fs::path& d) {
  auto o = tiny_options(d / "run", write_corpus(d));
  train_new(o, tiny_model(), RunControl{1, false, 2});
  return d / "run";
}

// Flips one byte in the middle of a file (in tensor data for safetensors).
void flip_byte(const fs::path& p) {
  auto bytes = io::read_file(p.string());
  bytes[bytes.size() - bytes.size() / 4] ^= 0x10;
  io::write_file_atomic(p.string(), bytes);
}

}  // namespace

// Defect 5: a single flipped byte in any checkpoint file is detected and the file named.
TEST(Reliability, CheckpointManifestNamesTheDamagedFile) {
  auto d = temp_dir("rel_manifest");
  auto run = trained_run(d);
  auto ck = run / "checkpoint";
  EXPECT_TRUE(fs::exists(ck / "manifest.json"));
  EXPECT_NO_THROW(load_model(run.string()));
  const auto good = io::read_file((ck / "model.safetensors").string());
  flip_byte(ck / "model.safetensors");
  expect_error([&] { load_model(run.string()); }, "model.safetensors is damaged");
  io::write_file_atomic((ck / "model.safetensors").string(), good);
  EXPECT_NO_THROW(load_model(run.string()));
  flip_byte(ck / "trainer.safetensors");
  expect_error([&] { train_resume(run.string(), kQuiet); }, "trainer.safetensors is damaged");
}

TEST(Reliability, CheckpointManifestCoversConfigAndOptions) {
  auto d = temp_dir("rel_manifest2");
  auto run = trained_run(d);
  auto ck = run / "checkpoint";
  auto cfg = io::read_file((ck / "config.json").string());
  io::write_file_atomic((ck / "config.json").string(), cfg + " ");  // same JSON, one byte more
  expect_error([&] { load_model(run.string()); }, "config.json is damaged");
  io::write_file_atomic((ck / "config.json").string(), cfg);
  auto opts = io::read_file((ck / "train_options.json").string());
  io::write_file_atomic((ck / "train_options.json").string(), opts + "\n");
  expect_error([&] { train_resume(run.string(), kQuiet); }, "train_options.json is damaged");
  io::write_file_atomic((ck / "train_options.json").string(), opts);
  // Old checkpoints (no manifest) still load and resume, with a warning.
  fs::remove(ck / "manifest.json");
  EXPECT_NO_THROW(load_model(run.string()));
  auto r = train_resume(run.string(), kQuiet);
  EXPECT_EQ(r.last_step, 4);
  EXPECT_TRUE(fs::exists(ck / "manifest.json"));  // the resumed run's checkpoint has one again
}

// Defect 2: same-width dtype relabelling (I32 for F32) is an error naming tensor and dtypes.
TEST(Reliability, TensorDtypeMustMatchTheModel) {
  auto d = temp_dir("rel_dtype");
  torch::manual_seed(0);
  ByteLM m(tiny_model());
  fs::create_directories(d / "m");
  io::write_file_atomic((d / "m/config.json").string(), m.config.to_json().dump());
  std::vector<std::pair<std::string, at::Tensor>> ts;
  for (auto& kv : m.named_parameters()) {
    auto t = kv.value().detach();
    if (kv.key() == "embeddings.weight") t = t.view(at::kInt);  // same bytes, declared I32
    ts.emplace_back(kv.key(), t);
  }
  io::save_safetensors((d / "m/model.safetensors").string(), ts);
  try {
    load_model((d / "m").string());
    ADD_FAILURE() << "an I32 tensor loaded into an F32 parameter";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("embeddings.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("I32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("F32"), std::string::npos) << msg;
  }
}

// Defect 3: NaN weights make eval and score fail instead of printing nan.
TEST(Reliability, NonFiniteEvalAndScoreAreErrors) {
  auto d = temp_dir("rel_nan");
  torch::manual_seed(0);
  ByteLM m(tiny_model());
  m.eval();
  {
    torch::NoGradGuard ng;
    m.named_parameters()["lm_head.weight"][3][0] = std::numeric_limits<float>::quiet_NaN();
  }
  auto f = write_corpus(d);
  auto file = std::make_shared<MappedFile>(f);
  ByteSpan span{file, 0, file->size(), f};
  expect_error([&] { evaluate(m, span, tiling_offsets(file->size(), 32), 32, 4, false); }, "not finite");
  std::string text = "the cat sat on the mat";
  expect_error([&] { per_byte_nll(m, (const uint8_t*)text.data(), text.size(), 8, false); }, "not finite");
}

// Defect 3 (training): a resumed run whose weights are NaN stops at its first step.
TEST(Reliability, NonFiniteTrainingLossNamesTheStep) {
  auto d = temp_dir("rel_nan_train");
  auto run = trained_run(d);
  auto ck = run / "checkpoint";
  auto model = load_model(run.string());
  {
    torch::NoGradGuard ng;
    model->named_parameters()["embeddings.weight"].fill_(std::numeric_limits<float>::quiet_NaN());
  }
  save_weights((ck / "model.safetensors").string(), *model);
  fs::remove(ck / "manifest.json");  // edited on purpose: load as an unverified checkpoint
  expect_error([&] { train_resume(run.string(), kQuiet); }, "diverged at step 3");
}

// Defect 7: train_options.json holds the data path absolute; resume works from any cwd.
TEST(Reliability, ResumeFromAnotherWorkingDirectory) {
  auto d = temp_dir("rel_cwd");
  write_corpus(d);
  const auto cwd = fs::current_path();
  fs::current_path(d);
  auto o = tiny_options(d / "run", "corpus.txt");  // relative, as typed
  try {
    train_new(o, tiny_model(), RunControl{1, false, 2});
  } catch (...) {
    fs::current_path(cwd);
    throw;
  }
  fs::current_path("/");
  TrainResult r;
  EXPECT_NO_THROW(r = train_resume((d / "run").string(), kQuiet));
  fs::current_path(cwd);
  EXPECT_EQ(r.last_step, 4);
  auto saved = json::parse(io::read_file((d / "run/checkpoint/train_options.json").string()));
  EXPECT_EQ(saved["data"], (d / "corpus.txt").string());
}

// Defect 8: non-finite or non-positive learning rates fail the option check.
TEST(Reliability, LearningRateMustBeFinitePositive) {
  TrainOptions o;
  o.data = "x", o.out = "y";
  EXPECT_NO_THROW(o.validate());
  for (double lr : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(), -1e-3, 0.0}) {
    o.lr = lr;
    expect_error([&] { o.validate(); }, "--lr");
  }
}

// Defect 6: attention layers need attn_cfg; Mamba layers need ssm_cfg.
TEST(Reliability, ConfigSectionsTheLayoutNeeds) {
  auto j = tiny_json();
  j.erase("attn_cfg");
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "attn_cfg");
  j = tiny_json();
  j.erase("ssm_cfg");
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "ssm_cfg");
  j = tiny_json();
  j["arch_layout"] = {"T2"};
  j.erase("ssm_cfg");
  EXPECT_NO_THROW(ModelConfig::from_json(j, "c.json"));  // attention only: no ssm_cfg needed
}

// Defect 6: fields that do not apply to the layout are still type-checked, and
// integers must be JSON integers (not 8.5 or true).
TEST(Reliability, ConfigFieldsAreTypeCheckedEvenWhenUnused) {
  auto j = tiny_json();
  j["arch_layout"] = {"T2"};
  j["ssm_cfg"]["d_state"] = 8.5;
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "ssm_cfg.d_state");
  j["ssm_cfg"]["d_state"] = true;
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "ssm_cfg.d_state");
  j = tiny_json();
  j["arch_layout"] = {"m2"};
  j["attn_cfg"]["num_heads"] = {2.5};
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "attn_cfg.num_heads");
  j["attn_cfg"]["num_heads"] = {2};
  j["attn_cfg"]["window_size"] = {"all"};
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "attn_cfg.window_size");
  j = tiny_json();
  j["d_model"] = {true};  // (32.0 is a whole number and loads: Readers.ConfigIntegersMustBeWholeAndInRange)
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "d_model");
}

TEST(Reliability, Crc32KnownAnswers) {
  EXPECT_EQ(io::crc32(""), 0u);
  EXPECT_EQ(io::crc32("123456789"), 0xCBF43926u);  // the standard check value (zlib.crc32 too)
  std::string s(1000, 'x');
  for (size_t i = 0; i < s.size(); ++i) s[i] = (char)(i * 7 + 3);
  // Chained updates at every split equal the one-shot value (slicing-by-8 tail handling).
  const uint32_t whole = io::crc32(s);
  for (size_t cut : {1, 7, 8, 9, 500, 999})
    EXPECT_EQ(io::crc32_update(io::crc32_update(0, s.data(), cut), s.data() + cut, s.size() - cut), whole) << cut;
}

TEST(Reliability, ResidualFieldsAreTypeChecked) {
  auto j = tiny_json();
  j["residual"] = json::parse(R"({"type": "mhc", "n": 4.5})");
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "residual.n");
  j["residual"] = json::parse(R"({"type": "mhc", "n": 4, "tanh": 1})");
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "residual.tanh");
  j["residual"] = json::parse(R"({"type": "mhc", "n": 4, "sinkhorn_eps": 0})");  // an integer is a number
  EXPECT_NO_THROW(ModelConfig::from_json(j, "c.json"));
}

// Defect 1, the resume side: restore_metrics keeps exactly what the checkpoint covers.
TEST(Reliability, RestoreMetricsKeepsWhatTheCheckpointCovers) {
  auto d = temp_dir("rel_metrics");
  const auto path = (d / "metrics.jsonl").string();
  std::string covered;
  for (int s = 1; s <= 3; ++s) covered += "{\"step\":" + std::to_string(s) + ",\"loss\":1.5}\n";
  const std::string after = "{\"step\":4,\"loss\":1.4}\n{\"step\":5,\"lo";  // then a line torn by a kill
  io::write_file_atomic(path, covered + after);
  restore_metrics(path, 3, (int64_t)covered.size());
  EXPECT_EQ(io::read_file(path), covered);
  // A checkpoint of an older version records no size: complete lines of steps <= 3.
  io::write_file_atomic(path, covered + after);
  restore_metrics(path, 3, -1);
  EXPECT_EQ(io::read_file(path), covered);
  // A file shorter than recorded (replaced by hand) keeps its lines up to the step.
  io::write_file_atomic(path, "{\"step\":1,\"loss\":1.5}\n{\"step\":4,\"loss\":1.4}\n");
  restore_metrics(path, 3, 1000);
  EXPECT_EQ(io::read_file(path), "{\"step\":1,\"loss\":1.5}\n");
  // MetricsLog appends whole lines and reports the size a checkpoint records.
  {
    MetricsLog log(path);
    log.write(json{{"step", 2}});
    EXPECT_EQ(log.sync(), (int64_t)io::read_file(path).size());
  }
  EXPECT_EQ(io::read_file(path), "{\"step\":1,\"loss\":1.5}\n{\"step\":2}\n");
  fs::remove(path);
  EXPECT_NO_THROW(restore_metrics(path, 3, 10));  // no file: nothing to do
  EXPECT_FALSE(fs::exists(path));
}

TEST(Reliability, HModelFieldsAreTypeChecked) {
  auto j = tiny_json();
  j["hmodel"] = json::parse(R"({"T": 2.5})");
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "hmodel.T");
  j["hmodel"] = json::parse(R"({"T": 2, "routing": {"topk": true}})");
  expect_error([&] { ModelConfig::from_json(j, "c.json"); }, "topk");
  j["hmodel"] = json::parse(R"({"T": 2, "loss": {"lambda_self": 1}})");  // an integer is a number
  EXPECT_NO_THROW(ModelConfig::from_json(j, "c.json"));
}

// Training, data, checkpoint and generation tests on tiny synthetic data.
#include <gtest/gtest.h>
#include <malloc.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "infer/score.h"
#include "train/lm_objective.h"
#include "infer/generate.h"
#include "io/atomic_file.h"
#include "train/adamw.h"
#include "train/step_metrics.h"
#include "run/checkpoint.h"
#include "train/trainer.h"
#include "expect_error.h"
#include "test_util.h"

using namespace dynarch;
namespace fs = std::filesystem;

namespace {

using dynarch::testing::temp_dir;

// Deterministic pseudo-English bytes: words from a small vocabulary.
std::string synthetic_text(size_t n, uint64_t seed) {
  static const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"};
  std::string s;
  uint64_t x = seed;
  while (s.size() < n) {
    x = splitmix64(x);
    s += words[x % 12];
    s += (x >> 20) % 9 == 0 ? ".\n" : " ";
  }
  s.resize(n);
  return s;
}

ModelConfig tiny_model() {
  return ModelConfig::from_json(nlohmann::json::parse(R"({"arch_layout": ["T1m1"], "d_model": [32],
    "d_intermediate": [64], "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8},
    "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]}})"),
                                "tiny");
}

TrainOptions tiny_options(const fs::path& dir, const std::string& data) {
  TrainOptions o;
  o.data = data;
  o.out = (dir / "run").string();
  o.steps = 8;
  o.batch = 2;
  o.seq_len = 32;
  o.accum = 2;
  o.lr = 3e-3;
  o.eval_every = 4;
  o.eval_windows = 4;
  o.save_every = 0;
  return o;
}

std::string write_corpus(const fs::path& dir) {
  auto f = (dir / "corpus.txt").string();
  io::write_file_atomic(f, synthetic_text(20000, 1));
  return f;
}

}  // namespace

TEST(Data, ClearErrorsNameTheFile) {
  auto d = temp_dir("data");
  auto expect_error = [](const std::string& path, const std::string& needle) {
    try {
      Corpus::open(path, 64);
      ADD_FAILURE() << "no error for " << path;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error((d / "missing.bin").string(), "missing.bin");
  io::write_file_atomic((d / "empty.bin").string(), "");
  expect_error((d / "empty.bin").string(), "empty");
  io::write_file_atomic((d / "small.bin").string(), "abc");
  expect_error((d / "small.bin").string(), "small.bin");
  fs::create_directories(d / "corpusdir");
  expect_error((d / "corpusdir").string(), "train.bin");
}

TEST(Data, BatchLayoutAndDeterminism) {
  auto d = temp_dir("batch");
  auto c = Corpus::open(write_corpus(d), 16);
  auto a = sample_batch(c.train, 7, 3, 0, 0, 4, 16), b = sample_batch(c.train, 7, 3, 0, 0, 4, 16);
  EXPECT_TRUE(a.inputs.equal(b.inputs));
  EXPECT_FALSE(a.inputs.equal(sample_batch(c.train, 7, 4, 0, 0, 4, 16).inputs));
  // A data-parallel rank's slice (rows 2, 3) is exactly those rows of the whole micro-batch.
  EXPECT_TRUE(sample_batch(c.train, 7, 3, 0, 2, 2, 16).inputs.equal(a.inputs.narrow(0, 2, 2)));
  for (int64_t r = 0; r < 4; ++r) {
    EXPECT_EQ(a.inputs[r][0].item<int64_t>(), kBOS);
    EXPECT_TRUE(a.inputs[r].narrow(0, 1, 15).equal(a.targets[r].narrow(0, 0, 15)));
  }
  EXPECT_EQ(c.val.size, 20000 / 50);
  auto w = windows_at(c.val, {c.val.size - 5}, 16);  // short last window is padded with -1 targets
  EXPECT_EQ(w.targets.ge(0).sum().item<int64_t>(), 5);
}

TEST(Optim, WsdSchedule) {
  EXPECT_NEAR(wsd_lr(0, 100, 1.0, 0.1, 0.2), 0.1, 1e-12);
  EXPECT_NEAR(wsd_lr(9, 100, 1.0, 0.1, 0.2), 1.0, 1e-12);
  EXPECT_NEAR(wsd_lr(50, 100, 1.0, 0.1, 0.2), 1.0, 1e-12);
  EXPECT_NEAR(wsd_lr(90, 100, 1.0, 0.1, 0.2), 1.0 - std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(wsd_lr(100, 100, 1.0, 0.1, 0.2, 0.1), 0.1, 1e-12);
}

TEST(Optim, AdamWMatchesHandComputation) {
  auto p = torch::tensor({1.0}, torch::kDouble).requires_grad_(true);
  auto q = torch::tensor({1.0}, torch::kDouble).requires_grad_(true);
  AdamWOptions o;
  o.weight_decay = 0.5;
  AdamW opt({{"p", p, 2.0, true}, {"q", q, 1.0, false}}, o);
  (p * 3.0 + q * 3.0).sum().backward();
  opt.step(0.1);
  // lr 0.2 for p: decay 1 - 0.2*0.5 = 0.9, then Adam's first step moves by lr * sign(g).
  EXPECT_NEAR(p.item<double>(), 0.9 - 0.2 * 3.0 / (3.0 + 1e-8), 1e-9);
  EXPECT_NEAR(q.item<double>(), 1.0 - 0.1 * 3.0 / (3.0 + 1e-8), 1e-9);
  auto st = opt.state_tensors();
  ASSERT_EQ(st.size(), 4u);
  EXPECT_EQ(st[0].first, "exp_avg.p");
}

TEST(Optim, ClipGradNorm) {
  auto p = torch::tensor({3.0, 0.0}, torch::kFloat).requires_grad_(true);
  auto q = torch::tensor({4.0}, torch::kFloat).requires_grad_(true);
  auto r = torch::tensor({1.0}, torch::kFloat).requires_grad_(true);  // no gradient: skipped
  std::vector<ParamInfo> ps{{"p", p, 1.0, true}, {"q", q, 1.0, true}, {"r", r, 1.0, true}};
  EXPECT_EQ(clip_grad_norm(ps, 1.0), 0.0);  // no gradients at all
  (p * torch::tensor({3.0f, 0.0f})).sum().add((q * 4.0f).sum()).backward();  // grads (3, 0) and (4): norm 5
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 0.0), 5.0);  // 0 = report only
  EXPECT_FLOAT_EQ(p.grad()[0].item<float>(), 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 10.0), 5.0);  // under the limit: unchanged
  EXPECT_FLOAT_EQ(q.grad()[0].item<float>(), 4.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 2.5), 5.0);  // the norm before clipping
  EXPECT_NEAR(p.grad()[0].item<float>(), 3.0 * 2.5 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(q.grad()[0].item<float>(), 4.0 * 2.5 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(clip_grad_norm(ps, 0.0), 2.5, 1e-5);
  EXPECT_FALSE(r.grad().defined());
}

// The step's logged scalars, queued and read in one copy: the same doubles as
// reading each with .item() at once (fp32, fp64 and integer tensors, a divisor,
// one destination added twice), nothing read before read(), and cleared after.
TEST(Train, StepMetricsReadOnceEqualsItemReads) {
  auto a = torch::tensor(0.1f), b = torch::tensor(2.5, torch::kDouble), c = torch::tensor(7, torch::kLong);
  Metrics sums;
  double extra = 1.0;
  StepMetrics m(sums);
  m.add("loss", a);
  m.add("bpb", a, std::log(2.0));
  m.add("loss", b);
  m.add(extra, c, 4.0);
  EXPECT_TRUE(sums.at("loss") == 0.0 && extra == 1.0);  // queued, not read
  m.read();
  EXPECT_EQ(sums.at("loss"), a.item<double>() + b.item<double>());
  EXPECT_EQ(sums.at("bpb"), a.item<double>() / std::log(2.0));
  EXPECT_EQ(extra, 1.0 + 7.0 / 4.0);
  m.read();  // cleared: a second read adds nothing
  EXPECT_EQ(sums.at("loss"), a.item<double>() + b.item<double>());
  testutil::expect_error([&] { m.add("x", torch::ones({2})); }, "one-element tensor");
}

TEST(Train, InterruptedAndResumedRunIsBitIdentical) {
  auto d = temp_dir("resume");
  auto data = write_corpus(d);
  auto oa = tiny_options(d / "a", data), ob = tiny_options(d / "b", data);
  RunControl quiet{1, false, -1};
  auto full = train_new(oa, tiny_model(), quiet);
  ASSERT_EQ(full.losses.size(), 8u);
  EXPECT_LT(full.losses.back(), full.losses.front());  // it learns
  RunControl crash{1, false, 3};
  auto first = train_new(ob, tiny_model(), crash);
  ASSERT_EQ(first.losses.size(), 3u);
  // A crash during the next save may leave only checkpoint.old: resume must cope.
  fs::rename(fs::path(ob.out) / "checkpoint", fs::path(ob.out) / "checkpoint.old");
  auto second = train_resume(ob.out, quiet);
  ASSERT_EQ(second.losses.size(), 5u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(first.losses[i], full.losses[i]) << i;
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(second.losses[i], full.losses[3 + i]) << i;
  EXPECT_EQ(second.val_bpb, full.val_bpb);
  auto ma = load_model(oa.out), mb = load_model(ob.out);
  auto pa = ma->named_parameters(), pb = mb->named_parameters();
  for (auto& kv : pa) EXPECT_TRUE(kv.value().equal(pb[kv.key()])) << kv.key();
  // metrics.jsonl holds each step once
  std::ifstream m(fs::path(ob.out) / "metrics.jsonl");
  int train_lines = 0;
  for (std::string line; std::getline(m, line);)
    train_lines += nlohmann::json::parse(line).contains("loss");
  EXPECT_EQ(train_lines, 8);
  // a fresh run into an existing run directory is refused
  EXPECT_THROW(train_new(ob, tiny_model(), quiet), UserError);
}

TEST(Checkpoint, CorruptOrMismatchedWeightsGiveClearErrors) {
  auto d = temp_dir("ckpt");
  torch::manual_seed(0);
  ByteLM m(tiny_model());
  fs::create_directories(d / "m");
  io::write_file_atomic((d / "m/config.json").string(), m.config.to_json().dump());
  save_weights((d / "m/model.safetensors").string(), m);
  EXPECT_NO_THROW(load_model((d / "m").string()));
  auto expect_error = [&](const std::string& needle) {
    try {
      load_model((d / "m").string());
      ADD_FAILURE() << "no error";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto bytes = io::read_file((d / "m/model.safetensors").string());
  io::write_file_atomic((d / "m/model.safetensors").string(), bytes.substr(0, bytes.size() / 2));
  expect_error("model.safetensors");
  io::write_file_atomic((d / "m/model.safetensors").string(), bytes);
  auto cfg = m.config.to_json();
  cfg["d_model"] = {48};
  io::write_file_atomic((d / "m/config.json").string(), cfg.dump());
  expect_error("has shape");
  cfg["d_model"] = {32};
  cfg["arch_layout"] = {"T1m2"};
  io::write_file_atomic((d / "m/config.json").string(), cfg.dump());
  expect_error("missing tensor");
  io::write_file_atomic((d / "m/config.json").string(), "{not json");
  expect_error("config.json");
  expect_error("config.json");
  EXPECT_THROW(load_model((d / "nothing").string()), UserError);
}

TEST(Generate, GreedyStepPathAgreesWithFullForward) {
  torch::manual_seed(1);
  ByteLM m(tiny_model());
  m.eval();
  SampleOptions so;
  so.temperature = 0;
  std::string prompt = "the cat";
  auto out = generate(m, prompt, 20, so, false);
  ASSERT_EQ(out.size(), 20u);
  std::vector<int64_t> ids{kBOS};
  for (unsigned char c : prompt + out) ids.push_back(c);
  torch::NoGradGuard ng;
  auto logits = m.forward(at::tensor(ids, at::kLong).view({1, -1}))[0];
  for (size_t i = 0; i < out.size(); ++i)
    EXPECT_EQ(logits[prompt.size() + i].argmax().item<int64_t>(), (unsigned char)out[i]) << i;
}

TEST(Generate, SamplerOptions) {
  auto logits = torch::tensor({0.0, 3.0, 2.9, -1.0});
  SampleOptions o;
  o.temperature = 0;
  EXPECT_EQ(Sampler(o).sample(logits), 1);
  o.temperature = 1.0;
  o.top_k = 1;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Sampler(o).sample(logits), 1);
  o.top_k = 2;
  std::set<int64_t> seen;
  Sampler s(o);
  for (int i = 0; i < 200; ++i) seen.insert(s.sample(logits));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 2}));
  o.top_k = 0;
  o.top_p = 0.3;  // the top token alone holds > 30 % of the mass
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Sampler(o).sample(logits), 1);
  o.top_p = 1.0;
  o.seed = 42;
  Sampler a(o), b(o);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.sample(logits), b.sample(logits));
}

TEST(Generate, Utf8StreamerNeverSplitsCharacters) {
  std::vector<std::string> pieces;
  Utf8Streamer s([&](const std::string& p) { pieces.push_back(p); });
  std::string text = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  for (unsigned char c : text) s.push(c);
  s.flush();
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80"}));
  pieces.clear();
  for (unsigned char c : std::string("\xFF" "b\xE4\xB8" "c\xE4")) s.push(c);
  s.flush();
  EXPECT_EQ(pieces, (std::vector<std::string>{"\xEF\xBF\xBD", "b", "\xEF\xBF\xBD", "c", "\xEF\xBF\xBD"}));
}

TEST(Score, SegmentedScoringEqualsOnePass) {
  torch::manual_seed(3);
  ByteLM m(tiny_model());
  m.eval();
  auto text = synthetic_text(300, 9);
  auto a = per_byte_nll(m, (const uint8_t*)text.data(), text.size(), 1000, false);
  auto b = per_byte_nll(m, (const uint8_t*)text.data(), text.size(), 37, false);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  // First byte is predicted after BOS alone.
  torch::NoGradGuard ng;
  auto lg = at::log_softmax(m.forward(at::tensor({kBOS}, at::kLong).view({1, 1}))[0][0], -1);
  EXPECT_NEAR(a[0].item<double>(), -lg[(unsigned char)text[0]].item<double>(), 1e-5);
}

// DYNARCH_THREADS: the default thread count when no --threads is given; bad values are errors.
TEST(Runtime, ThreadsFromTheEnvironment) {
  const int before = dynarch::num_threads();
  setenv("DYNARCH_THREADS", "1", 1);
  dynarch::set_threads(0);
  EXPECT_EQ(dynarch::num_threads(), 1);
  dynarch::set_threads(2);  // an explicit count wins
  EXPECT_EQ(dynarch::num_threads(), 2);
  for (const char* bad : {"abc", "0", "-3", "2x"}) {
    setenv("DYNARCH_THREADS", bad, 1);
    try {
      dynarch::set_threads(0);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const dynarch::UserError& e) {
      EXPECT_NE(std::string(e.what()).find("DYNARCH_THREADS must be a positive integer, got \"" + std::string(bad)),
                std::string::npos)
          << e.what();
    }
  }
  unsetenv("DYNARCH_THREADS");
  dynarch::set_threads(before);
}

// DYNARCH_MALLOC: keep (default, also when unset) or system; anything else is an error.
TEST(Runtime, MallocSettingFromTheEnvironment) {
  EXPECT_TRUE(dynarch::keep_freed_memory_from_env(nullptr));
  EXPECT_TRUE(dynarch::keep_freed_memory_from_env(""));
  EXPECT_TRUE(dynarch::keep_freed_memory_from_env("keep"));
  EXPECT_FALSE(dynarch::keep_freed_memory_from_env("system"));
  dynarch::testutil::expect_error([] { dynarch::keep_freed_memory_from_env("jemalloc"); },
                                  "DYNARCH_MALLOC must be \"keep\" (default) or \"system\", got \"jemalloc\"");
  // Before main's error handling exists: the message and exit status 2.
  EXPECT_EXIT(
      {
        setenv("DYNARCH_MALLOC", "bogus", 1);
        dynarch::keep_freed_memory();
      },
      ::testing::ExitedWithCode(2), "error: DYNARCH_MALLOC must be");
}

// Huge pages for the heap: appended to the user's tunables, never overriding their own choice.
TEST(Runtime, HugetlbTunable) {
  EXPECT_EQ(dynarch::tunables_with_hugetlb(nullptr), "glibc.malloc.hugetlb=1");
  EXPECT_EQ(dynarch::tunables_with_hugetlb(""), "glibc.malloc.hugetlb=1");
  EXPECT_EQ(dynarch::tunables_with_hugetlb("glibc.malloc.arena_max=2"),
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1");
  EXPECT_EQ(dynarch::tunables_with_hugetlb("glibc.malloc.hugetlb=0"), "");
  EXPECT_EQ(dynarch::tunables_with_hugetlb("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"), "");
}

// With the setting on, a large block is served from the heap (no mmap) and stays there when freed.
TEST(Runtime, KeptMemoryIsNotMapped) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan replaces malloc: mallinfo2() no longer describes the heap in use";
#endif
  unsetenv("DYNARCH_MALLOC");
  dynarch::keep_freed_memory();
  const size_t bytes = size_t(64) << 20, mapped = mallinfo2().hblkhd;  // bytes in mmapped blocks
  auto* p = static_cast<char*>(std::malloc(bytes));
  ASSERT_NE(p, nullptr);
  p[0] = p[bytes - 1] = 1;
  EXPECT_EQ(mallinfo2().hblkhd, mapped);  // glibc's default would map this block
  std::free(p);
  EXPECT_GE(mallinfo2().arena, bytes);  // not trimmed back to the system
}

// The benchmark programs' option pairs and their errors.
TEST(BenchOptions, PairsAndErrors) {
  const char* ok[] = {"prog", "--steps", "3", "--model", "runs/x"};
  auto pairs = dynarch::option_pairs(5, const_cast<char**>(ok), "bench_x");
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0], (std::pair<std::string, std::string>{"--steps", "3"}));
  EXPECT_EQ(pairs[1], (std::pair<std::string, std::string>{"--model", "runs/x"}));
  const char* lone[] = {"prog", "--steps", "3", "--model"};
  dynarch::testutil::expect_error([&] { dynarch::option_pairs(4, const_cast<char**>(lone), "bench_x"); },
                                  "bench_x: option --model needs a value (usage: the comment at the top of bench/bench_x.cpp)");
  const char* help[] = {"prog", "--help"};
  dynarch::testutil::expect_error([&] { dynarch::option_pairs(2, const_cast<char**>(help), "bench_x"); },
                                  "bench_x: expected --name value pairs, got --help");
  const char* bare[] = {"prog", "steps", "3"};
  dynarch::testutil::expect_error([&] { dynarch::option_pairs(3, const_cast<char**>(bare), "bench_x"); },
                                  "expected --name value pairs, got steps");
}

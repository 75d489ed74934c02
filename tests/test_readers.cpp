// Reader bugs the fuzzers found (fuzz/, scripts/fuzz.sh), kept as unit tests so
// the normal suite catches a regression without a fuzz build. Each input was a
// crash or undefined behaviour before its fix; the seeds are in fuzz/corpus/.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "model/config/config.h"
#include "test_util.h"
#include "train/options.h"
#include "train/trainer.h"

using namespace dynarch;
using nlohmann::json;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

json iso(const std::string& layout = "T1") {
  return json{{"arch_layout", {layout}}, {"d_model", {32}}, {"d_intermediate", {64}}, {"attn_cfg", {{"num_heads", {2}}}}};
}

std::string config_error(const json& j) {
  return error_of([&] { ModelConfig::from_json(j, "cfg.json"); });
}

std::string options_error(const json& j) {
  return error_of([&] { TrainOptions::from_json(j, "opts.json"); });
}

}  // namespace

// std::regex recursed per character: a 100 000-digit layer count overflowed the
// stack (SIGSEGV); a 20-digit one escaped as std::out_of_range "stol".
TEST(Readers, LongLayerCountsAreErrorsNotCrashes) {
  std::string digits = "m", letters = "T1";
  digits.append(100000, '1');
  letters.append(50000, 'm');
  EXPECT_NE(error_of([&] { parse_layout_string(digits, "x"); }).find("1..10000"), std::string::npos);
  EXPECT_NE(error_of([] { parse_layout_string("m99999999999999999999", "x"); }).find("1..10000"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_layout_string(letters, "x"); }).find("offset 2"), std::string::npos);
  EXPECT_EQ(parse_layout_string("m10000", "x").size(), 10000u);
  EXPECT_EQ(parse_layout_string("T0002m1", "x").size(), 3u);
}

// nlohmann's get<int>() of 1e10 is undefined behaviour and of 32.5 silently 32.
TEST(Readers, ConfigIntegersMustBeWholeAndInRange) {
  for (json bad : {json(1e10), json(32.5), json(4294967328LL), json(-1e300)}) {
    auto j = iso();
    j["d_model"] = {bad};
    EXPECT_NE(config_error(j).find("d_model"), std::string::npos) << bad;
  }
  auto j = iso();
  j["d_model"] = {32.0};  // a whole number written as a float is still a whole number
  EXPECT_EQ(config_error(j), "");
  j = iso();
  j["residual"] = {{"type", "mhc"}, {"n", 1e12}};
  EXPECT_NE(config_error(j).find("residual"), std::string::npos);
  j = iso("T3");
  j["hmodel"] = {{"T", 3.5}};
  EXPECT_NE(config_error(j).find("hmodel.T"), std::string::npos);
  j = iso("T3");
  j["hmodel"] = {{"nodes", {{{"at", 4294967297.0}, {"d_model", 32}}}}};
  EXPECT_NE(config_error(j).find("nodes[0].at"), std::string::npos);
}

// seed 1.9e19 (a float) was undefined behaviour; -1 wrapped to 2^64 - 1.
TEST(Readers, OptionIntegersMustBeWholeAndInRange) {
  EXPECT_NE(options_error({{"seed", 1.88935e19}}).find("\"seed\""), std::string::npos);
  EXPECT_NE(options_error({{"seed", -1}}).find("\"seed\""), std::string::npos);
  EXPECT_NE(options_error({{"steps", 2.5}}).find("\"steps\""), std::string::npos);
  EXPECT_NE(options_error({{"batch", 1e300}}).find("\"batch\""), std::string::npos);
  EXPECT_NE(options_error({{"ratio_targets", {3, "x"}}}).find("\"ratio_targets\""), std::string::npos);
  auto o = TrainOptions::from_json({{"seed", 18446744073709551615ULL}, {"steps", 40.0}}, "opts.json");
  EXPECT_EQ(o.seed, 18446744073709551615ULL);
  EXPECT_EQ(o.steps, 40);
}

// --resume read train_options.json without validating it: batch 0 trained into
// "training diverged", accum 0 failed with "map::at", batch -3 with a std::vector error.
TEST(Readers, ResumeValidatesTheOptionsFile) {
  namespace fs = std::filesystem;
  auto d = dynarch::testing::temp_dir("resume_options");
  std::string text;
  for (int i = 0; text.size() < 8000; ++i) text += i % 3 ? "the cat sat " : "on a mat. ";
  io::write_file_atomic((d / "corpus.txt").string(), text);
  TrainOptions o;
  o.data = (d / "corpus.txt").string(), o.out = (d / "run").string();
  o.steps = 4, o.batch = 2, o.seq_len = 16, o.eval_every = 0, o.save_every = 0;
  train_new(o, ModelConfig::from_json(iso(), "tiny"), RunControl{1, false, 2});
  const auto file = (d / "run" / "checkpoint" / "train_options.json").string();
  const auto saved = json::parse(io::read_file(file));
  // Without the manifest (an older checkpoint) the edit is not caught as damage, so the
  // options checks themselves must reject it.
  fs::remove(d / "run" / "checkpoint" / "manifest.json");
  for (auto [key, value, needle] : {std::tuple{"batch", 0, "--batch"}, {"accum", 0, "--accum"}, {"seq_len", 1, "--seq-len"}}) {
    auto edited = saved;
    edited[key] = value;
    io::write_file_atomic(file, edited.dump());
    const auto err = error_of([&] { train_resume(o.out, RunControl{1, false, -1}); });
    EXPECT_NE(err.find("train_options.json"), std::string::npos) << err;
    EXPECT_NE(err.find(needle), std::string::npos) << err;
  }
}

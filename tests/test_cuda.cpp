// CUDA against CPU, whole models (issue #16): per-byte NLL (score), the step
// path, gradients, a training run resumed from CUDA on the CPU. Skipped, not
// failed, where no GPU is visible (every CPU machine, and any build without
// -DDYNARCH_CUDA); a GPU session runs them. Until CUDA kernels land, every op
// on CUDA is its tensor-op reference (core/forward_context.h), so these check
// the device plumbing and the references; fp32 throughout, tolerance 1e-4.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "core/device.h"
#include "core/forward_context.h"
#include "hmodel_util.h"
#include "infer/score.h"
#include "io/atomic_file.h"
#include "model/lm.h"
#include "run/checkpoint.h"
#include "train/lm_objective.h"
#include "train/trainer.h"
#include "test_util.h"

using namespace dynarch;
using nlohmann::json;
using dynarch::hmtest::hm_config;

namespace {

bool have_gpu() { return device_facts().cuda_count > 0; }
#define REQUIRE_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible (or a build without -DDYNARCH_CUDA)"

const json kSsm = {{"d_state", 8}, {"d_conv", 4}, {"expand", 2}, {"chunk_size", 4}, {"headdim", 16}};

json model_json(const std::string& kind) {
  if (kind == "isotropic")
    return {{"arch_layout", {"T1m1"}}, {"d_model", {32}}, {"d_intermediate", {64}}, {"ssm_cfg", kSsm},
            {"attn_cfg", {{"num_heads", {2}}, {"rotary_emb_dim", {8}}, {"window_size", {-1}}}}};
  if (kind == "hnet1")
    return {{"arch_layout", {"m2", {"T2"}, "m2"}}, {"d_model", {32, 48}}, {"d_intermediate", {0, 128}},
            {"ssm_cfg", kSsm}, {"attn_cfg", {{"num_heads", {2, 4}}, {"rotary_emb_dim", {8, 8}}, {"window_size", {-1, -1}}}}};
  if (kind == "hnet2")
    return {{"arch_layout", {"m1", {"T1m1", {"T2"}, "m1T1"}, "m1"}}, {"d_model", {32, 32, 48}},
            {"d_intermediate", {0, 64, 128}}, {"ssm_cfg", kSsm},
            {"attn_cfg", {{"num_heads", {2, 2, 4}}, {"rotary_emb_dim", {8, 8, 8}}, {"window_size", {-1, 3, -1}}}}};
  if (kind == "mhc") {
    auto j = model_json("isotropic");
    j["residual"] = {{"type", "mhc"}, {"n", 4}};
    return j;
  }
  return hm_config("T1m1f1", {{"T", 3}, {"routing", {{"topk", 2}}}});  // H-Model
}

// The same weights on the CPU and on cuda:0. Weights are perturbed (seeded)
// so that H-Net boundaries and H-Model routes vary across positions.
std::pair<std::shared_ptr<ByteLM>, std::shared_ptr<ByteLM>> twin_models(const std::string& kind) {
  const auto cfg = ModelConfig::from_json(model_json(kind), kind);
  torch::manual_seed(7);
  auto cpu = std::make_shared<ByteLM>(cfg);
  {
    torch::NoGradGuard ng;
    for (auto& kv : cpu->named_parameters()) kv.value().add_(0.05 * at::randn_like(kv.value()));
  }
  auto gpu = std::make_shared<ByteLM>(cfg);
  {
    torch::NoGradGuard ng;
    auto src = cpu->named_parameters();
    for (auto& kv : gpu->named_parameters()) kv.value().copy_(src[kv.key()]);
  }
  gpu->to(c10::Device(c10::kCUDA, 0));
  return {cpu, gpu};
}

std::string text_bytes(size_t n) {
  std::string s;
  const char* words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat. ", "dog ", "ran "};
  for (size_t i = 0; s.size() < n; ++i) s += words[(i * 7 + i / 3) % 8];
  s.resize(n);
  return s;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

const char* const kKinds[] = {"isotropic", "hnet1", "hnet2", "mhc", "hmodel"};

}  // namespace

// Per-byte NLL (dynarch score) with the state carried across segments.
TEST(Cuda, ScoreEqualsCpu) {
  REQUIRE_GPU();
  const auto text = text_bytes(200);
  for (const char* kind : kKinds) {
    auto [cpu, gpu] = twin_models(kind);
    const auto* d = reinterpret_cast<const uint8_t*>(text.data());
    auto a = per_byte_nll(*cpu, d, text.size(), 64, false, false);
    DeviceScope on(gpu->device());
    auto b = per_byte_nll(*gpu, d, text.size(), 64, false, false);
    EXPECT_EQ(b.device().type(), c10::kCPU) << kind;  // score returns host floats
    EXPECT_LE(max_abs_diff(a, b), 1e-4) << kind;
  }
}

// Prefill then byte steps, two rows (H-Net: the inner network on boundary rows only).
TEST(Cuda, StepEqualsCpu) {
  REQUIRE_GPU();
  const auto text = text_bytes(64);
  auto ids = at::empty({2, 32}, at::kLong);
  for (int64_t t = 0; t < 32; ++t) ids[0][t] = (int64_t)(uint8_t)text[t], ids[1][t] = (int64_t)(uint8_t)text[t + 32];
  for (const char* kind : kKinds) {
    auto [cpu, gpu] = twin_models(kind);
    torch::NoGradGuard ng;
    cpu->eval(), gpu->eval();
    DeviceScope on(gpu->device());
    auto sa = cpu->new_state(2), sb = gpu->new_state(2);
    EXPECT_LE(max_abs_diff(cpu->forward(ids.narrow(1, 0, 16), &sa), gpu->forward(ids.narrow(1, 0, 16), &sb)), 1e-4)
        << kind;
    for (int64_t t = 16; t < 32; ++t) {
      auto la = cpu->step(ids.select(1, t), sa), lb = gpu->step(ids.select(1, t), sb);
      EXPECT_EQ(lb.device(), gpu->device()) << kind;
      EXPECT_LE(max_abs_diff(la, lb), 1e-4) << kind << " step " << t;
    }
  }
}

// Loss and every parameter gradient (relative to the largest gradient).
TEST(Cuda, GradientsEqualCpu) {
  REQUIRE_GPU();
  const auto text = text_bytes(130);
  auto ids = at::empty({2, 64}, at::kLong), tg = at::empty({2, 64}, at::kLong);
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t t = 0; t < 64; ++t)
      ids[r][t] = (int64_t)(uint8_t)text[r * 64 + t], tg[r][t] = (int64_t)(uint8_t)text[r * 64 + t + 1];
  for (const char* kind : kKinds) {
    auto [cpu, gpu] = twin_models(kind);
    DeviceScope on(gpu->device());
    auto la = lm_loss(cpu->forward(ids), tg), lb = lm_loss(gpu->forward(ids), tg);
    EXPECT_LE(std::abs(la.item<double>() - lb.item<double>()), 1e-4) << kind;
    la.backward();
    lb.backward();
    auto ga = cpu->named_parameters(), gb = gpu->named_parameters();
    double scale = 1e-12;
    for (auto& kv : ga)
      if (kv.value().grad().defined()) scale = std::max(scale, kv.value().grad().abs().max().item<double>());
    for (auto& kv : ga) {
      const auto& g = kv.value().grad();
      const auto& h = gb[kv.key()].grad();
      ASSERT_EQ(g.defined(), h.defined()) << kind << " " << kv.key();
      if (g.defined()) EXPECT_LE(max_abs_diff(g, h) / scale, 1e-4) << kind << " " << kv.key();
    }
  }
}

// Train on CUDA, stop, resume on the CPU: the losses follow an all-CPU run (to
// 1e-4: the arithmetic differs), and the checkpoint loads on either device.
TEST(Cuda, TrainOnCudaResumeOnCpu) {
  REQUIRE_GPU();
  auto d = dynarch::testing::temp_dir("cuda_resume");
  const auto data = (d / "corpus.txt").string();
  io::write_file_atomic(data, text_bytes(20000));
  auto opts = [&](const std::string& name, const std::string& device) {
    TrainOptions o;
    o.data = data, o.out = (d / name).string(), o.device = device;
    o.steps = 6, o.batch = 2, o.seq_len = 32, o.lr = 3e-3, o.eval_every = 3, o.eval_windows = 2, o.save_every = 0;
    return o;
  };
  for (const char* kind : {"isotropic", "hnet1", "mhc"}) {
    const auto cfg = ModelConfig::from_json(model_json(kind), kind);
    auto all_cpu = train_new(opts(std::string("cpu_") + kind, "cpu"), cfg, RunControl{1, false});
    auto first = train_new(opts(std::string("gpu_") + kind, "cuda"), cfg, RunControl{1, false, 3});
    auto second = train_resume((d / (std::string("gpu_") + kind)).string(), RunControl{1, false, -1, -1, "cpu"});
    ASSERT_EQ(first.losses.size(), 3u) << kind;
    ASSERT_EQ(second.losses.size(), 3u) << kind;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_NEAR(first.losses[i], all_cpu.losses[i], 1e-4) << kind << " step " << i;
      EXPECT_NEAR(second.losses[i], all_cpu.losses[3 + i], 1e-4) << kind << " step " << 3 + i;
    }
    auto back = load_model((d / (std::string("gpu_") + kind)).string(), c10::Device(c10::kCUDA, 0));
    EXPECT_EQ(back->device(), c10::Device(c10::kCUDA, 0));
  }
}

// Packed sequences (model/layers/packing.h) against the padded reference:
// the helpers, bad cu_seqlens, Mamba-2 and attention layers alone (outputs and
// every gradient, fp64), and whole 1- and 2-stage H-Nets forward + backward
// with PackingScope on and off.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "core/forward_context.h"
#include "expect_error.h"
#include "kernels/cpu/mamba/ssd_scan.h"
#include "model/hnet/ratio_loss.h"
#include "model/layers/attention.h"
#include "model/layers/gru.h"
#include "model/layers/mamba2.h"
#include "model/layers/packing.h"
#include "model/lm.h"

using namespace dynarch;
using dynarch::testutil::expect_error;
using nlohmann::json;

namespace {

double maxdiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

at::Tensor valid_mask(const at::Tensor& lengths, int64_t L) {
  return (at::arange(L, at::kLong).view({1, L}) < lengths.view({-1, 1})).to(at::kDouble).unsqueeze(-1);
}

// Output (padded layout, zeros past each length) and the gradients of x and of
// every parameter of a mixer under the loss sum(y * w) over valid positions,
// run padded (forward with lengths) or packed (forward_packed, or `packed_form`).
using PackedForm = std::function<at::Tensor(const at::Tensor&, const PackedSeqs&)>;
std::vector<at::Tensor> mixer_run(Mixer& m, const at::Tensor& x, const at::Tensor& lengths, const at::Tensor& w,
                                  bool packed, const PackedForm& packed_form = {}) {
  auto xi = x.detach().clone().requires_grad_(true);
  at::Tensor y;
  if (packed) {
    auto pk = packing_from_lengths(lengths, x.size(1));
    auto xp = pack(xi, pk);
    y = unpack(packed_form ? packed_form(xp, pk) : m.forward_packed(xp, pk), pk);
  } else {
    y = m.forward(xi, nullptr, 0, lengths) * valid_mask(lengths, x.size(1));
  }
  std::vector<at::Tensor> params{xi};
  for (auto& p : m.parameters()) params.push_back(p);
  auto g = torch::autograd::grad({(y * w).sum()}, params);
  g.insert(g.begin(), y.detach());
  return g;
}

// Returns the largest difference.
double expect_same(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, double tol,
                   const std::string& what) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = maxdiff(a[i], b[i]);
    EXPECT_LT(d, tol) << what << ": tensor " << i << (i == 0 ? " (output)" : " (gradient)");
    worst = std::max(worst, d);
  }
  return worst;
}

// Lengths with a sequence of 1, sequences crossing the scan's state
// checkpoints (kScanCheckpoint) and the layer's SSD chunk size, an empty row.
at::Tensor unequal_lengths() { return torch::tensor({1, 40, 0, 7, 33, 70}, at::kLong); }

}  // namespace

TEST(Packing, PackUnpackRoundTrip) {
  auto len = torch::tensor({3, 0, 5, 1}, at::kLong);
  auto pk = packing_from_lengths(len, 5);
  EXPECT_EQ(pk.count(), 3);
  EXPECT_EQ(pk.total(), 9);
  EXPECT_EQ(pk.offsets, (std::vector<int64_t>{0, 3, 8, 9}));
  EXPECT_TRUE(pk.lengths().equal(len));
  EXPECT_TRUE(pk.starts().equal(torch::tensor({0, 0, 0, 3, 3, 3, 3, 3, 8}, at::kLong)));
  auto x = torch::randn({4, 5, 2, 3});
  auto p = pack(x, pk);
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{1, 9, 2, 3}));
  EXPECT_TRUE(p[0][3].equal(x[2][0]));
  auto u = unpack(p, pk);
  auto m = valid_mask(len, 5).to(at::kFloat).unsqueeze(-1);
  EXPECT_TRUE(u.equal(x * m));
}

TEST(Packing, BadCuSeqlensGiveClearErrors) {
  expect_error([] { check_cu_seqlens(torch::tensor({0, 3, 3, 6}, at::kLong), 6); }, "strictly increasing");
  expect_error([] { check_cu_seqlens(torch::tensor({0, 4, 2, 6}, at::kLong), 6); }, "strictly increasing");
  expect_error([] { check_cu_seqlens(torch::tensor({0, 3, 5}, at::kLong), 6); }, "must end at the total length 6");
  expect_error([] { check_cu_seqlens(torch::tensor({0, 3, 7}, at::kLong), 6); }, "must end at the total length 6");
  expect_error([] { check_cu_seqlens(torch::tensor({1, 3, 6}, at::kLong), 6); }, "must start at 0");
  expect_error([] { check_cu_seqlens(torch::tensor({0.0, 6.0}), 6); }, "integers");
  expect_error([] { check_cu_seqlens(torch::tensor({0}, at::kLong), 0); }, "1-D tensor");
  expect_error([] { packing_from_cu_seqlens(torch::tensor({0, 2, 2}, at::kLong), 2); }, "strictly increasing");
  expect_error([] { packing_from_lengths(torch::tensor({2, 9}, at::kLong), 5); }, "outside [0, 5]");
  auto pk = packing_from_cu_seqlens(torch::tensor({0, 2, 7}, at::kLong), 7);
  EXPECT_EQ(pk.max_len, 5);
  EXPECT_TRUE(pk.lengths().equal(torch::tensor({2, 5}, at::kLong)));
  expect_error([&] { unpack(torch::zeros({1, 6, 2}), pk); }, "unpack: expected (1, 7");
}

TEST(Packing, Mamba2PackedEqualsPaddedFp64) {
  // headdim 8 (vector scan) and 6 (scalar scan); SSD chunk size 4.
  ASSERT_GT(70, 2 * fused::kScanCheckpoint);
  for (int64_t hd : {8, 6}) {
    torch::manual_seed(31 + hd);
    Mamba2 m(24, 4, 4, 2, hd, 4);
    m.to(torch::kDouble);
    {
      torch::NoGradGuard ng;
      m.conv1d->bias.normal_();
      m.D.normal_();
      m.dt_bias.uniform_(-2.0, 1.0);
    }
    auto len = unequal_lengths();
    auto x = torch::randn({6, 70, 24}, torch::kDouble), w = torch::randn({6, 70, 24}, torch::kDouble);
    auto padded = mixer_run(m, x, len, w, false);
    expect_same(mixer_run(m, x, len, w, true), padded, 1e-11, "fused packed, headdim " + std::to_string(hd));
    // The device-ops form (what forward_packed runs off the CPU), here on the CPU tensor ops.
    PackedForm chunked = [&m](const at::Tensor& xp, const PackedSeqs& pk) { return m.forward_packed_chunked(xp, pk); };
    const double d = expect_same(mixer_run(m, x, len, w, true, chunked), padded, 1e-11,
                                 "device-ops packed, headdim " + std::to_string(hd));
    std::printf("[ max abs error ] Mamba2 forward_packed_chunked vs padded, headdim %d: %.2e\n", (int)hd, d);
    expect_error([&] { m.forward_packed_chunked(x, packing_from_lengths(len, 70)); },
                 "Mamba2::forward_packed_chunked: expected a packed row (1, 151, D)");
    ReferenceKernelsScope reference;  // the packed reference is the padded op-by-op layer
    expect_same(mixer_run(m, x, len, w, true), padded, 1e-11, "reference packed, headdim " + std::to_string(hd));
  }
}

TEST(Packing, AttentionPackedEqualsPaddedFp64) {
  for (int64_t window : {-1, 5}) {
    torch::manual_seed(41);
    Attention a(32, 4, 4, window);
    a.to(torch::kDouble);
    auto len = unequal_lengths();
    auto x = torch::randn({6, 70, 32}, torch::kDouble), w = torch::randn({6, 70, 32}, torch::kDouble);
    // The windowed path (attention_reference) takes its scores to fp32 even for
    // fp64 inputs, so one score rounding differently between the batched and the
    // per-sequence matmul shows at fp32 level; the causal path stays fp64.
    expect_same(mixer_run(a, x, len, w, true), mixer_run(a, x, len, w, false), window < 0 ? 1e-12 : 1e-6,
                "attention, window " + std::to_string(window));
  }
}

TEST(Packing, MixerWithoutPackedFormFallsBackToPadded) {
  torch::manual_seed(43);
  GRUMixer g(16);
  g.to(torch::kDouble);
  auto len = torch::tensor({3, 9, 1}, at::kLong);
  auto x = torch::randn({3, 9, 16}, torch::kDouble), w = torch::randn({3, 9, 16}, torch::kDouble);
  expect_same(mixer_run(g, x, len, w, true), mixer_run(g, x, len, w, false), 1e-12, "gru");
}

namespace {

json hnet_config(int stages) {
  if (stages == 1)
    return json::parse(R"({"arch_layout": ["m2", ["T1m1"], "m2"], "d_model": [32, 48], "d_intermediate": [0, 64],
      "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 16},
      "attn_cfg": {"num_heads": [2, 4], "rotary_emb_dim": [8, 8], "window_size": [-1, -1]}})");
  return json::parse(R"({"arch_layout": ["m1", ["T1m1", ["m1T1"], "m1T1"], "m1"], "d_model": [32, 32, 48],
    "d_intermediate": [0, 64, 64],
    "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 4, "headdim": 16},
    "attn_cfg": {"num_heads": [2, 2, 4], "rotary_emb_dim": [8, 8, 8], "window_size": [-1, 3, -1]}})");
}

// Loss (next-byte NLL + ratio losses) and the gradient of every parameter.
std::pair<double, std::map<std::string, at::Tensor>> hnet_step(ByteLM& m, const at::Tensor& ids, bool packed,
                                                               std::vector<int64_t>* chunks) {
  PackingScope packing(packed);
  m.zero_grad();
  StageRecorder rec;
  auto logits = m.forward(ids);
  auto loss = at::nll_loss(at::log_softmax(logits, -1).reshape({-1, 256}).narrow(0, 0, ids.numel() - 1),
                           ids.reshape({-1}).narrow(0, 1, ids.numel() - 1));
  for (auto& t : rec.traces) loss = loss + 0.03 * ratio_loss(t.p, t.b, t.mask, 3.0).loss;
  loss.backward();
  std::map<std::string, at::Tensor> g;
  for (auto& kv : m.named_parameters())
    g[kv.key()] = kv.value().grad().defined() ? kv.value().grad().clone() : at::zeros_like(kv.value());
  if (chunks)
    for (auto& t : rec.traces) {
      auto c = t.b.sum(1);
      chunks->push_back((c.max() - c.min()).item<int64_t>());
    }
  return {loss.item<double>(), g};
}

}  // namespace

class PackedHNet : public ::testing::TestWithParam<int> {};

TEST_P(PackedHNet, ForwardBackwardEqualsPaddedFp64) {
  const int stages = GetParam();
  torch::manual_seed(50 + stages);
  ByteLM m(ModelConfig::from_json(hnet_config(stages), "t"));
  {
    torch::NoGradGuard ng;
    for (auto& kv : m.named_parameters())
      if (kv.key().find("residual_proj.weight") != std::string::npos || kv.key().find("routing_module") != std::string::npos)
        kv.value().normal_(0, 0.2);  // boundaries that vary between rows
  }
  m.to(torch::kDouble);
  auto ids = torch::randint(0, 256, {4, 96}, at::kLong);
  std::vector<int64_t> spread;
  auto [l0, g0] = hnet_step(m, ids, false, &spread);
  auto [l1, g1] = hnet_step(m, ids, true, nullptr);
  ASSERT_EQ((int)spread.size(), stages);
  for (int s = 0; s < stages; ++s) EXPECT_GT(spread[s], 0) << "rows of stage " << s << " chunk alike: nothing to pack";
  EXPECT_NEAR(l0, l1, 1e-12);
  ASSERT_EQ(g0.size(), g1.size());
  for (auto& [name, g] : g0) EXPECT_LT(maxdiff(g, g1.at(name)), 1e-11) << name;
}

INSTANTIATE_TEST_SUITE_P(Stages, PackedHNet, ::testing::Values(1, 2));

#include "train/options.h"

TEST(Packing, TrainOptionDefaultsOnAndOldRunsLoad) {
  EXPECT_TRUE(TrainOptions{}.packed);
  auto j = TrainOptions{}.to_json();
  EXPECT_TRUE(j.at("packed").get<bool>());
  j.erase("packed");  // train_options.json of a run from before the field
  EXPECT_TRUE(TrainOptions::from_json(j, "old").packed);
  j["packed"] = false;
  EXPECT_FALSE(TrainOptions::from_json(j, "t").packed);
  EXPECT_TRUE(forward_context().packed);
  {
    PackingScope off(false);
    EXPECT_FALSE(forward_context().packed);
  }
  EXPECT_TRUE(forward_context().packed);
}

TEST(Packing, ClassifierBatchPacksStageZeroFp64) {
  // Right-padded classifier rows pack stage 0 (isotropic) and the inner stage (H-Net).
  for (auto layout : {R"(["m1T1"])", R"(["m1", ["T1m1"], "m1"])"}) {
    auto j = hnet_config(1);
    j["arch_layout"] = json::parse(layout);
    if (j["arch_layout"].size() == 1) {
      j["d_model"] = {32};
      j["d_intermediate"] = {64};
      j["attn_cfg"] = json::parse(R"({"num_heads": [2], "rotary_emb_dim": [8], "window_size": [-1]})");
    }
    j["task"] = json::parse(R"({"type": "classify", "num_classes": 3})");
    torch::manual_seed(60);
    ByteLM m(ModelConfig::from_json(j, "t"));
    m.to(torch::kDouble);
    auto ids = torch::randint(0, 256, {3, 40}, at::kLong);
    auto len = torch::tensor({40, 1, 23}, at::kLong);
    auto w = torch::randn({3, 3}, torch::kDouble);
    std::vector<std::vector<at::Tensor>> r;
    for (bool packed : {false, true}) {
      PackingScope packing(packed);
      m.zero_grad();
      auto logits = m.classify(ids, len);
      (logits * w).sum().backward();
      std::vector<at::Tensor> v{logits.detach()};
      for (auto& p : m.parameters()) v.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
      r.push_back(v);
    }
    expect_same(r[1], r[0], 1e-11, std::string("classifier ") + layout);
  }
}

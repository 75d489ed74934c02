// The optimizer ops of kernels/cpu/optim (adamw_step, grad_clip) as the CPU
// runs them: bit for bit the tensor ops AdamW and clip_grad_norm ran before
// the ops existed (a copy of that code is the oracle here), a non-finite norm
// updating nothing, and bad input named. The CUDA kernels: test_cuda_optim.cpp
// (GPU) and test_cuda_emulated_optim.cpp (host emulation).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "expect_error.h"
#include "kernels/cpu/optim/adamw_step.h"
#include "kernels/cpu/optim/grad_clip.h"
#include "train/adamw.h"

using namespace dynarch;
using testutil::expect_error;

namespace {

// AdamW::step and clip_grad_norm as they were (commit b1d1773), verbatim but
// for the state living here.
struct PreviousAdamW {
  std::vector<at::Tensor> m, v;
  AdamWOptions o;
  int64_t t = 0;

  static double clip(const std::vector<ParamInfo>& params, double max_norm) {
    torch::NoGradGuard ng;
    at::Tensor sq;
    for (auto& p : params) {
      if (!p.param.grad().defined()) continue;
      auto s = p.param.grad().to(at::kDouble).pow(2).sum();
      sq = sq.defined() ? sq + s : s;
    }
    const double norm = sq.defined() ? std::sqrt(sq.item<double>()) : 0.0;
    if (max_norm > 0 && norm > max_norm) {
      double s = max_norm / (norm + 1e-6);
      for (auto& p : params)
        if (p.param.grad().defined()) p.param.mutable_grad().mul_(s);
    }
    return norm;
  }

  void step(const std::vector<ParamInfo>& params, double lr, const AdamW& owner) {
    torch::NoGradGuard ng;
    ++t;
    const double bc1 = 1.0 - std::pow(o.beta1, (double)t);
    const double bc2 = 1.0 - std::pow(o.beta2, (double)t);
    for (size_t i = 0; i < params.size(); ++i) {
      auto& p = params[i].param;
      if (!p.grad().defined() || !owner.owned(i)) continue;
      const auto& g = p.grad();
      const double plr = lr * params[i].lr_mult;
      m[i].mul_(o.beta1).add_(g, 1.0 - o.beta1);
      v[i].mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
      if (params[i].weight_decay && o.weight_decay > 0) p.mul_(1.0 - plr * o.weight_decay);
      auto denom = (v[i].sqrt() / std::sqrt(bc2)).add_(o.eps);
      p.addcdiv_(m[i], denom, -plr / bc1);
    }
  }
};

// A parameter set: sizes around 256 and 4096, mixed lr multipliers and decay
// flags; "w3" never gets a gradient.
std::vector<ParamInfo> make_params(uint64_t seed) {
  torch::manual_seed(seed);
  const std::vector<int64_t> sizes = {4097, 0, 300, 1, 2 * 4096 + 5, 256, 77};
  std::vector<ParamInfo> ps;
  for (size_t i = 0; i < sizes.size(); ++i)
    ps.push_back({"w" + std::to_string(i), torch::randn({sizes[i]}).requires_grad_(true),
                  i % 3 == 0 ? 1.0 : (i % 3 == 1 ? 2.0 : 0.5), i % 2 == 0});
  return ps;
}

void set_grads(std::vector<ParamInfo>& ps, int step) {
  torch::manual_seed(100 + step);
  for (size_t i = 0; i < ps.size(); ++i) {
    if (i == 3) continue;
    auto g = torch::randn_like(ps[i].param) * (1.0 + i);
    if (!ps[i].param.grad().defined()) ps[i].param.mutable_grad() = g;
    else ps[i].param.mutable_grad().copy_(g);
  }
}

void expect_same(const std::vector<ParamInfo>& a, const std::vector<ParamInfo>& b, const std::string& what) {
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].param.equal(b[i].param)) << what << " " << a[i].name;
}

}  // namespace

TEST(OptimOps, CpuBitIdenticalToPreviousOps) {
  // Unsharded and ZeRO-sharded (rank 0 of 2: some parameters belong to rank 1).
  for (bool sharded : {false, true}) {
    auto pa = make_params(1), pb = make_params(1), pc = make_params(1);
    AdamWOptions o;
    AdamW fused(pa, o), split(pb, o);
    if (sharded) fused.shard(0, 2), split.shard(0, 2);
    PreviousAdamW old{{}, {}, o};
    for (auto& p : pc) old.m.push_back(torch::zeros_like(p.param)), old.v.push_back(torch::zeros_like(p.param));
    const double max_norms[] = {1.0, 1e9, 0.0, 0.5, 3.0};
    for (int step = 0; step < 5; ++step) {
      for (auto* ps : {&pa, &pb, &pc}) set_grads(*ps, step);
      const double lr = 1e-2 * (step + 1);
      const double n_old = PreviousAdamW::clip(pc, max_norms[step]);
      old.step(pc, lr, fused);
      const double n_fused = fused.clip_and_step(lr, max_norms[step]);
      const double n_split = clip_grad_norm(split.params(), max_norms[step]);
      split.step(lr);
      EXPECT_EQ(n_fused, n_old) << step;
      EXPECT_EQ(n_split, n_old) << step;
      const std::string what = (sharded ? "sharded step " : "step ") + std::to_string(step);
      expect_same(pa, pc, "clip_and_step, " + what);
      expect_same(pb, pc, "clip_grad_norm + step, " + what);
      std::map<std::string, at::Tensor> st;
      for (auto& [k, t] : fused.state_tensors()) st[k] = t;
      for (size_t i = 0; i < pc.size(); ++i) {
        if (!fused.owned(i)) continue;
        EXPECT_TRUE(st.at("exp_avg." + pc[i].name).equal(old.m[i])) << what;
        EXPECT_TRUE(st.at("exp_avg_sq." + pc[i].name).equal(old.v[i])) << what;
      }
    }
    EXPECT_EQ(fused.steps_taken(), 5);
  }
}

TEST(OptimOps, NonFiniteNormUpdatesNothing) {
  auto ps = make_params(2);
  AdamW opt(ps, {});
  set_grads(ps, 0);
  EXPECT_TRUE(std::isfinite(opt.clip_and_step(1e-2, 1.0)));
  std::vector<at::Tensor> before;
  for (auto& p : ps) before.push_back(p.param.detach().clone());
  std::vector<at::Tensor> moments;
  for (auto& [k, t] : opt.state_tensors()) moments.push_back(t.clone());
  for (double bad : {std::nan(""), (double)INFINITY}) {
    set_grads(ps, 1);
    ps[4].param.mutable_grad()[3] = bad;
    const double norm = opt.clip_and_step(1e-2, 1.0);
    EXPECT_FALSE(std::isfinite(norm));
    EXPECT_EQ(opt.steps_taken(), 1);
    for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(ps[i].param.equal(before[i])) << ps[i].name;
    auto st = opt.state_tensors();
    for (size_t i = 0; i < st.size(); ++i) EXPECT_TRUE(st[i].second.equal(moments[i])) << st[i].first;
  }
}

TEST(OptimOps, ClipCoefficientPair) {
  auto p = torch::tensor({3.0f, 0.0f}), q = torch::tensor({4.0f});
  std::vector<OptimTensor> ts{{"p", p, p.clone()}, {"q", q, q.clone()}};
  auto c = grad_clip_coef(ts, 2.5);
  ASSERT_EQ(c.scalar_type(), at::kDouble);
  EXPECT_EQ(c[0].item<double>(), 5.0);
  EXPECT_EQ(c[1].item<double>(), 2.5 / (5.0 + 1e-6));
  EXPECT_EQ(grad_clip_coef(ts, 5.0)[1].item<double>(), 1.0);  // not above: no clipping
  EXPECT_EQ(grad_clip_coef(ts, 0.0)[1].item<double>(), 1.0);  // off
  auto none = grad_clip_coef({}, 1.0);
  EXPECT_EQ(none[0].item<double>(), 0.0);
  EXPECT_EQ(none[1].item<double>(), 1.0);
  scale_grads(ts, c);
  EXPECT_FLOAT_EQ(ts[1].grad[0].item<float>(), 4.0f * (float)(2.5 / (5.0 + 1e-6)));
}

TEST(OptimOps, BadInputNamesTheTensor) {
  auto p = torch::zeros({3, 4}), g = torch::zeros({3, 4}), m = torch::zeros({3, 4}), v = torch::zeros({3, 4});
  const AdamWScalars s{1e-3, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05};
  auto with = [&](OptimTensor t) { return std::vector<OptimTensor>{{"ok", p, g, m, v}, t}; };
  expect_error([&] { adamw_step(with({"w", p, g, torch::zeros({4, 3}), v}), s); },
               "adamw_step: exp_avg of 'w' has shape [4, 3], the parameter [3, 4]");
  expect_error([&] { adamw_step(with({"w", p, g.to(at::kDouble), m, v}), s); },
               "adamw_step: grad of 'w' is Double, the parameter Float");
  expect_error([&] { adamw_step(with({"w", p, g, m, torch::zeros({3, 4}, at::TensorOptions().device(c10::kMeta))}), s); },
               "adamw_step: exp_avg_sq of 'w' is on meta, the parameter on cpu");
  expect_error([&] { adamw_step(with({"w", p, at::Tensor(), m, v}), s); }, "adamw_step: grad of 'w' is undefined");
  expect_error([&] { adamw_step(with({"w", p, g, at::Tensor(), v}), s); }, "adamw_step: exp_avg of 'w' is undefined");
  auto pm = torch::zeros({3, 4}, at::TensorOptions().device(c10::kMeta));
  expect_error([&] { adamw_step(with({"w", pm, pm, pm, pm}), s); },
               "adamw_step: parameter 'w' is on meta, 'ok' on cpu (one device per call)");
  expect_error([&] { adamw_step(with({"w", p, g, m, v}), s, torch::zeros({2})); }, "adamw_step: clip must be the fp64");
  expect_error([&] { adamw_step(with({"w", p, g, m, v}), s, torch::zeros({3}, at::kDouble)); },
               "adamw_step: clip must be the fp64");
  expect_error([&] { grad_clip_coef(with({"w", p, torch::zeros({12})}), 1.0); },
               "grad_clip_coef: grad of 'w' has shape [12], the parameter [3, 4]");
  expect_error([&] { scale_grads(with({"w", p, g}), at::Tensor()); }, "scale_grads: clip is undefined");
}

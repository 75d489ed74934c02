// The optimizer on CUDA (src/kernels/cuda/optim/: fused multi-tensor AdamW,
// gradient norm and clip coefficient on the device, through AdamW and the ops
// of kernels/cpu/optim): AdamW::clip_and_step against the same optimizer in
// reference mode on the GPU (the tensor ops) and on the CPU, fp32 <= 1e-6
// relative, with mixed lr multipliers and decay flags, an fp64 parameter
// among fp32 ones, a parameter without a gradient, ZeRO sharding, clipping
// active, inactive and off; a deterministic norm against fp64; new gradient
// tensors between steps (the cached tables follow); a non-finite norm; the hook
// and bad input. Skipped when no GPU is visible (always in the CPU build); the
// emulated run of the kernels is test_cuda_emulated_optim.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda_test_util.h"

#include <cstdio>

#include "core/forward_context.h"
#include "expect_error.h"
#include "kernels/cpu/optim/adamw_step.h"
#include "kernels/cpu/optim/grad_clip.h"
#include "train/adamw.h"

#if DYNARCH_CUDA
#include "kernels/cuda/optim/adamw_cuda.h"
#include "kernels/cuda/optim/grad_clip_cuda.h"
#endif

using namespace dynarch;
using dynarch::testutil::rel;
using testutil::expect_error;

namespace {

// Sizes around the block (256) and the chunk (4096), an empty one, a large
// one; "w3" gets no gradient, "w9" is fp64.
std::vector<ParamInfo> make_params(const at::Device& dev) {
  torch::manual_seed(21);
  const std::vector<int64_t> sizes = {4097, 0, 300, 1, 2 * 4096 + 5, 256, 3 * 4096 + 1, 77, 1 << 20, 999};
  std::vector<ParamInfo> ps;
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto t = torch::randn({sizes[i]}, i == 9 ? at::kDouble : at::kFloat).to(dev).requires_grad_(true);
    ps.push_back({"w" + std::to_string(i), t, i % 3 == 0 ? 1.0 : (i % 3 == 1 ? 2.0 : 0.5), i % 2 == 0});
  }
  return ps;
}

void set_grads(std::vector<ParamInfo>& ps, int step) {
  torch::manual_seed(200 + step);
  for (size_t i = 0; i < ps.size(); ++i) {
    if (i == 3) continue;
    auto g = (torch::randn(ps[i].param.sizes(), ps[i].param.scalar_type()) * (0.01 * (1.0 + i)))
                 .to(ps[i].param.device());
    if (!ps[i].param.grad().defined()) ps[i].param.mutable_grad() = g;
    else ps[i].param.mutable_grad().copy_(g);
  }
}

// Largest relative difference of the parameters and of the moments.
double worst(const AdamW& a, const AdamW& b) {
  double w = 0;
  for (size_t i = 0; i < a.params().size(); ++i)
    if (a.params()[i].param.numel()) w = std::max(w, rel(a.params()[i].param, b.params()[i].param));
  auto sa = a.state_tensors(), sb = b.state_tensors();
  EXPECT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size() && i < sb.size(); ++i)
    if (sa[i].second.numel()) w = std::max(w, rel(sa[i].second, sb[i].second));
  return w;
}

}  // namespace

TEST(CudaOptim, FusedStepMatchesReferenceAndCpu) {
  REQUIRE_CUDA();
  const at::Device gpu(at::kCUDA, 0);
  for (bool sharded : {false, true}) {
    auto pf = make_params(gpu), pr = make_params(gpu), pc = make_params(at::kCPU);
    AdamWOptions o;
    AdamW fused(pf, o), ref(pr, o), cpu(pc, o);
    if (sharded)
      for (AdamW* a : {&fused, &ref, &cpu}) a->shard(0, 2);
    const double max_norms[] = {1.0, 1e9, 0.0, 0.5, 1e9, 2.0};
    double w_ref = 0, w_cpu = 0, w_norm = 0;
    for (int step = 0; step < 6; ++step) {
      for (auto* ps : {&pf, &pr, &pc}) set_grads(*ps, step);
      const double lr = 1e-2 * (1 + step % 3);
      const double nf = fused.clip_and_step(lr, max_norms[step]);
      double nr;
      {
        ReferenceKernelsScope tensor_ops;
        nr = ref.clip_and_step(lr, max_norms[step]);
      }
      const double nc = cpu.clip_and_step(lr, max_norms[step]);
      w_norm = std::max({w_norm, std::abs(nf - nc) / nc, std::abs(nr - nc) / nc});
      w_ref = std::max(w_ref, worst(fused, ref));
      w_cpu = std::max(w_cpu, worst(fused, cpu));
    }
    EXPECT_LE(w_ref, 1e-6);
    EXPECT_LE(w_cpu, 1e-6);
    EXPECT_LE(w_norm, 1e-12);
    // Never touched: the parameter without a gradient (and, sharded, rank 1's).
    const auto init = make_params(at::kCPU);
    for (size_t i = 0; i < pf.size(); ++i) {
      if (i == 3 || !fused.owned(i)) {
        EXPECT_TRUE(pf[i].param.cpu().equal(init[i].param)) << pf[i].name;
      }
    }
    std::printf("[ CUDA AdamW%s, 6 steps: max rel diff vs reference on CUDA %.3g, vs CPU %.3g, norm %.3g ]\n",
                sharded ? " (sharded)" : "", w_ref, w_cpu, w_norm);
  }
}

TEST(CudaOptim, NormDeterministicAndClipMatchesCpu) {
  REQUIRE_CUDA();
  torch::manual_seed(3);
  std::vector<at::Tensor> gs = {torch::randn({3 << 20}), torch::randn({5}), torch::randn({0}),
                                torch::randn({70001}) * 100, torch::randn({4096}, at::kDouble)};
  std::vector<ParamInfo> pc, pg;
  for (size_t i = 0; i < gs.size(); ++i) {
    auto a = torch::zeros_like(gs[i]).requires_grad_(true), b = torch::zeros_like(gs[i]).cuda().requires_grad_(true);
    a.mutable_grad() = gs[i].clone(), b.mutable_grad() = gs[i].cuda();
    pc.push_back({"g" + std::to_string(i), a}), pg.push_back({"g" + std::to_string(i), b});
  }
  std::vector<OptimTensor> ts;
  for (auto& p : pg) ts.push_back({p.name, p.param, p.param.grad()});
  auto c1 = grad_clip_coef(ts, 1.0), c2 = grad_clip_coef(ts, 1.0);
  EXPECT_TRUE(c1.is_cuda());
  EXPECT_TRUE(c1.equal(c2));  // the same sums in the same order
  std::vector<OptimTensor> tc;
  for (auto& p : pc) tc.push_back({p.name, p.param, p.param.grad()});
  const auto r = grad_clip_coef_reference(tc, 1.0);
  const double dn = rel(c1, r);
  EXPECT_LE(dn, 1e-12);
  const double nc = clip_grad_norm(pc, 1.0), ng = clip_grad_norm(pg, 1.0);
  EXPECT_LE(std::abs(ng - nc) / nc, 1e-12);
  double dg = 0;
  for (size_t i = 0; i < pc.size(); ++i)
    if (gs[i].numel()) dg = std::max(dg, rel(pg[i].param.grad(), pc[i].param.grad()));
  EXPECT_LE(dg, 1e-6);
  std::printf("[ CUDA grad norm: rel diff vs fp64 CPU %.3g; clipped grads vs CPU %.3g ]\n", dn, dg);
}

TEST(CudaOptim, TablesFollowNewGradientTensors) {
  REQUIRE_CUDA();
  const at::Device gpu(at::kCUDA, 0);
  auto pf = make_params(gpu), pc = make_params(at::kCPU);
  AdamW fused(pf, {}), cpu(pc, {});
  for (int step = 0; step < 4; ++step) {
    if (step == 2)  // new gradient tensors: other pointers than the cached tables hold
      for (auto* ps : {&pf, &pc})
        for (auto& p : *ps) p.param.mutable_grad() = at::Tensor();
    for (auto* ps : {&pf, &pc}) set_grads(*ps, step);
    fused.clip_and_step(1e-2, 1.0);
    cpu.clip_and_step(1e-2, 1.0);
    EXPECT_LE(worst(fused, cpu), 1e-6) << "step " << step;
    fused.zero_grad(), cpu.zero_grad();
  }
}

TEST(CudaOptim, NonFiniteNormUpdatesNothing) {
  REQUIRE_CUDA();
  auto ps = make_params(at::Device(at::kCUDA, 0));
  AdamW opt(ps, {});
  set_grads(ps, 0);
  opt.clip_and_step(1e-2, 1.0);
  std::vector<at::Tensor> before;
  for (auto& p : ps) before.push_back(p.param.detach().clone());
  for (double bad : {std::nan(""), (double)INFINITY}) {
    set_grads(ps, 1);
    ps[4].param.mutable_grad()[3] = bad;
    EXPECT_FALSE(std::isfinite(opt.clip_and_step(1e-2, 1.0)));
    EXPECT_EQ(opt.steps_taken(), 1);
    for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(ps[i].param.equal(before[i])) << ps[i].name;
  }
}

TEST(CudaOptim, HookEqualsBindingAndBadInput) {
  REQUIRE_CUDA();
#if DYNARCH_CUDA
  torch::manual_seed(4);
  const auto f = at::TensorOptions().device(at::kCUDA);
  auto mk = [&] { return std::vector<at::Tensor>{torch::randn({5000}, f), torch::randn({5000}, f) * 0.01,
                                                 torch::zeros({5000}, f), torch::zeros({5000}, f)}; };
  auto a = mk();
  std::vector<at::Tensor> b;
  for (auto& t : a) b.push_back(t.clone());
  const AdamWScalars s{1e-2, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05};
  auto clip = grad_clip_coef({{"w", a[0], a[1]}}, 0.1);
  adamw_step({{"w", a[0], a[1], a[2], a[3], 2.0, true}}, s, clip);
  std::shared_ptr<void> cache;
  cuda::adamw_step({{"w", b[0], b[1], b[2], b[3], 2.0, true}}, {s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.bc1, s.bc2},
                   clip, cache);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << i;
  // A non-contiguous gradient is outside the kernel's limits: the hook takes the reference.
  auto p2 = torch::randn({64, 32}, f), g2 = torch::randn({32, 64}, f).t();
  auto ref_p = p2.clone(), ref_m = torch::zeros_like(p2), ref_v = torch::zeros_like(p2);
  adamw_step({{"nc", p2, g2, torch::zeros_like(p2), torch::zeros_like(p2)}}, s);
  adamw_step_reference({{"nc", ref_p, g2, ref_m, ref_v}}, s);
  EXPECT_TRUE(p2.equal(ref_p));

  auto call = [&](at::Tensor g, at::Tensor m, const at::Tensor& c = {}) {
    std::shared_ptr<void> k;
    cuda::adamw_step({{"w", b[0], g, m, b[3]}}, {1e-2, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05}, c, k);
  };
  expect_error([&] { call(b[1].cpu(), b[2]); }, "adamw_step: grad of 'w' is on cpu, expected cuda:0");
  expect_error([&] { call(b[1].to(at::kDouble), b[2]); }, "adamw_step: grad of 'w' is Double, the parameter Float");
  expect_error([&] { call(b[1], b[2].to(at::kHalf)); }, "adamw_step: exp_avg of 'w' must be fp32 or fp64, got Half");
  expect_error([&] { call(b[1].narrow(0, 0, 4999), b[2]); }, "adamw_step: grad of 'w' has 4999 elements");
  expect_error([&] { call(b[1].view({50, 100}).t(), b[2]); }, "adamw_step: grad of 'w' must be contiguous");
  expect_error([&] { call(b[1], b[2], torch::zeros({3}, f.dtype(at::kDouble))); }, "adamw_step: clip must have shape");
  std::shared_ptr<void> k;
  expect_error([&] { cuda::grad_clip_coef({{"w", b[0], b[1].cpu()}}, 1.0, k); },
               "grad_clip_coef: grad of 'w' is on cpu");
  expect_error([&] { cuda::scale_grads({{"w", b[0], b[1]}}, torch::zeros({2}, f), k); },
               "scale_grads: clip must be Double");
#endif
}

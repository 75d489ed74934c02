// The optimizer's CUDA kernels (src/kernels/cuda/optim/: fused multi-tensor
// AdamW, gradient norm and clip coefficient, gradient scale), compiled by g++
// with DYNARCH_CUDA_EMULATE and run on the host as in test_cuda_emulated.cpp,
// against the tensor-op references of kernels/cpu/optim: several steps in fp64
// (and fp32) with mixed lr multipliers and decay flags, parameters without
// gradients and one another rank owns, clipping active, inactive and off,
// sizes that are no multiple of the block or the chunk, empty tensors, a
// non-finite norm. The tables are built as the binding builds them
// (multi_tensor.h). Built when the CUDA headers exist and the build is not the
// CUDA one.
#if DYNARCH_CUDA_EMULATED_TESTS
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cuda_test_util.h"

#include <cstdio>

#include "kernels/cpu/optim/adamw_step.h"
#include "kernels/cpu/optim/grad_clip.h"

#define DYNARCH_CUDA_EMULATE 1
#include "kernels/cuda/optim/adamw.cu"
#include "kernels/cuda/optim/grad_clip.cu"
#include "cuda_emulate_end.h"

using namespace dynarch;
using dynarch::testutil::rel;

namespace {

// What cuda::table_of builds from the binding's tensors, here from CPU tensors
// of one dtype (the emulated kernels read host memory).
std::vector<cuda::TensorMeta> host_table(const std::vector<OptimTensor>& ts, bool moments, int64_t* chunks) {
  std::vector<cuda::TensorMeta> out;
  for (const auto& t : ts) {
    cuda::TensorMeta e;
    e.g = t.grad.data_ptr();
    e.numel = t.grad.numel();
    if (moments) {
      e.p = t.param.data_ptr(), e.m = t.exp_avg.data_ptr(), e.v = t.exp_avg_sq.data_ptr();
      e.lr_mult = t.lr_mult, e.decay = t.decay;
    }
    out.push_back(e);
  }
  *chunks = cuda::assign_chunks(out.data(), (int64_t)out.size());
  return out;
}

// The binding's last step: {norm, coefficient} of `count` partials.
std::array<double, 2> emu_finish(const double* partials, int64_t count, double max_norm) {
  std::vector<double> scratch(cuda::grad_clip_scratch(count));
  std::array<double, 2> out{-1, -1};
  EXPECT_EQ(cuda::grad_clip_finish(partials, count, max_norm, scratch.data(), out.data(), nullptr), cudaSuccess);
  return out;
}

// {norm, coefficient} by the emulated norm kernels over one dtype group.
template <class C>
std::array<double, 2> emu_clip(const std::vector<OptimTensor>& ts, double max_norm) {
  int64_t chunks = 0;
  auto table = host_table(ts, false, &chunks);
  std::vector<double> partials(std::max<int64_t>(cuda::grad_sq_partial_count(chunks), 1));
  EXPECT_EQ(cuda::grad_sq_partials<C>(table.data(), (int64_t)table.size(), chunks, partials.data(), nullptr),
            cudaSuccess);
  return emu_finish(partials.data(), cuda::grad_sq_partial_count(chunks), max_norm);
}

// One model-like parameter set: p, moments, and a gradient where it has one.
struct Param {
  std::string name;
  at::Tensor p, m, v, g;
  double lr_mult;
  bool decay, has_grad, owned;
};

std::vector<Param> make_params(at::ScalarType dt) {
  // Sizes around the block (256) and the chunk (4096), two empty tensors.
  const std::vector<int64_t> sizes = {4097, 0, 300, 1, 2 * 4096 + 5, 256, 3 * 4096, 77, 0, 513};
  std::vector<Param> ps;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Param q;
    q.name = "w" + std::to_string(i);
    q.p = torch::randn({sizes[i]}, dt);
    q.m = torch::randn({sizes[i]}, dt) * 0.01;
    q.v = torch::rand({sizes[i]}, dt) * 1e-4;
    q.g = torch::zeros({sizes[i]}, dt);
    q.lr_mult = i % 3 == 0 ? 1.0 : (i % 3 == 1 ? 2.0 : 0.5);
    q.decay = i % 2 == 0;
    q.has_grad = i != 3;  // "w3" has no gradient: neither measured nor updated
    q.owned = i != 2;     // "w2" belongs to another rank: measured, not updated
    ps.push_back(q);
  }
  return ps;
}

std::vector<Param> clone(const std::vector<Param>& ps) {
  auto out = ps;
  for (auto& q : out) q.p = q.p.clone(), q.m = q.m.clone(), q.v = q.v.clone(), q.g = q.g.clone();
  return out;
}

std::vector<OptimTensor> tensors(const std::vector<Param>& ps, bool update) {
  std::vector<OptimTensor> ts;
  for (const auto& q : ps)
    if (q.has_grad && (!update || q.owned)) ts.push_back({q.name, q.p, q.g, q.m, q.v, q.lr_mult, q.decay});
  return ts;
}

// Largest relative difference of p, m, v over the set (relative to each
// reference tensor's largest magnitude); exact equality for empty tensors.
double worst_diff(const std::vector<Param>& a, const std::vector<Param>& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::pair<at::Tensor, at::Tensor> pairs[] = {{a[i].p, b[i].p}, {a[i].m, b[i].m}, {a[i].v, b[i].v}};
    for (const auto& [x, y] : pairs)
      if (x.numel()) w = std::max(w, rel(x, y));
  }
  return w;
}

// Steps of clip + AdamW: the emulated kernels on `emu`, the references on `ref`.
template <class C>
void run_steps(at::ScalarType dt, double tol, double norm_tol) {
  torch::manual_seed(11);
  auto ref = make_params(dt), emu = clone(ref);
  const double max_norms[] = {1.0, 1e9, 0.0, 0.5, 1e9, 2.0};  // active, inactive, off, ...
  double worst = 0, worst_norm = 0;
  for (int step = 0; step < 6; ++step) {
    for (size_t i = 0; i < ref.size(); ++i) {
      auto g = torch::randn_like(ref[i].g) * (1.0 + i);
      ref[i].g.copy_(g), emu[i].g.copy_(g);
    }
    const int64_t t = step + 1;
    const AdamWScalars s{1e-2, 0.9, 0.95, 1e-8, 0.1, 1 - std::pow(0.9, t), 1 - std::pow(0.95, t)};
    const auto clip = grad_clip_coef_reference(tensors(ref, false), max_norms[step]);
    adamw_step_reference(tensors(ref, true), s, clip);
    auto c = emu_clip<C>(tensors(emu, false), max_norms[step]);
    int64_t chunks = 0;
    auto table = host_table(tensors(emu, true), true, &chunks);
    const cuda::AdamWArgs a{s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.bc1, s.bc2};
    ASSERT_EQ(cuda::adamw_multi<C>(table.data(), (int64_t)table.size(), chunks, a, c.data(), nullptr), cudaSuccess);
    const double norm = clip[0].item<double>(), coef = clip[1].item<double>();
    worst_norm = std::max({worst_norm, std::abs(c[0] - norm) / norm, std::abs(c[1] - coef) / coef});
    EXPECT_EQ(coef != 1.0, max_norms[step] > 0 && norm > max_norms[step]) << "step " << step;
    const double d = worst_diff(emu, ref);
    EXPECT_LE(d, tol) << "step " << step;
    worst = std::max(worst, d);
  }
  EXPECT_LE(worst_norm, norm_tol);
  // Never updated, by either: the parameter without a gradient, the one another rank owns.
  for (int i : {2, 3}) {
    EXPECT_TRUE(emu[i].m.equal(ref[i].m)) << ref[i].name;
    EXPECT_TRUE(emu[i].p.equal(ref[i].p)) << ref[i].name;
  }
  std::printf("[ emulated AdamW %s, 6 steps: max rel diff p/m/v %.3g, norm/coefficient %.3g ]\n",
              c10::toString(dt), worst, worst_norm);
}

}  // namespace

TEST(CudaEmulatedOptim, AdamWMatchesReferenceFp64) { run_steps<double>(at::kDouble, 1e-13, 1e-14); }

// fp32 tensors: the kernel computes in fp32 as the tensor ops do; the norm is fp64 either way.
TEST(CudaEmulatedOptim, AdamWMatchesReferenceFp32) { run_steps<float>(at::kFloat, 1e-6, 1e-12); }

TEST(CudaEmulatedOptim, UntouchedParametersStayExact) {
  // The parameter without a gradient and the non-owned one never enter the
  // update table: bitwise what they were.
  torch::manual_seed(5);
  auto ps = make_params(at::kDouble), before = clone(ps);
  for (auto& q : ps) q.g.copy_(torch::randn_like(q.g));
  int64_t chunks = 0;
  auto table = host_table(tensors(ps, true), true, &chunks);
  const cuda::AdamWArgs a{1e-2, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05};
  ASSERT_EQ(cuda::adamw_multi<double>(table.data(), (int64_t)table.size(), chunks, a, nullptr, nullptr),
            cudaSuccess);
  for (int i : {2, 3}) {
    EXPECT_TRUE(ps[i].p.equal(before[i].p)) << ps[i].name;
    EXPECT_TRUE(ps[i].m.equal(before[i].m)) << ps[i].name;
    EXPECT_TRUE(ps[i].v.equal(before[i].v)) << ps[i].name;
  }
  EXPECT_FALSE(ps[0].p.equal(before[0].p));
}

TEST(CudaEmulatedOptim, NonFiniteNormUpdatesNothing) {
  torch::manual_seed(6);
  for (double bad : {std::nan(""), (double)INFINITY}) {
    auto ps = make_params(at::kDouble), before = clone(ps);
    for (auto& q : ps) q.g.copy_(torch::randn_like(q.g));
    ps[4].g[7] = bad;
    auto c = emu_clip<double>(tensors(ps, false), 1.0);
    EXPECT_FALSE(std::isfinite(c[0]));
    const auto ref = grad_clip_coef_reference(tensors(ps, false), 1.0);
    EXPECT_FALSE(std::isfinite(ref[0].item<double>()));
    EXPECT_EQ(c[1], ref[1].item<double>());  // NaN: 1; inf: 0 (max_norm / inf)
    int64_t chunks = 0;
    auto table = host_table(tensors(ps, true), true, &chunks);
    const cuda::AdamWArgs a{1e-2, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05};
    ASSERT_EQ(cuda::adamw_multi<double>(table.data(), (int64_t)table.size(), chunks, a, c.data(), nullptr),
              cudaSuccess);
    EXPECT_LE(worst_diff(ps, before), 0.0);
    auto r = clone(before);
    for (size_t i = 0; i < r.size(); ++i) r[i].g.copy_(ps[i].g);
    adamw_step_reference(tensors(r, true), {1e-2, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05}, ref);
    EXPECT_LE(worst_diff(r, before), 0.0);
  }
}

TEST(CudaEmulatedOptim, NormMatchesFp64ReferenceAndScale) {
  // fp32 and fp64 gradients in two groups (the binding's launches: fp32
  // partials first, then fp64, one final sum), against the fp64 reference.
  torch::manual_seed(9);
  std::vector<at::Tensor> f32 = {torch::randn({50000}) * 3, torch::randn({0}), torch::randn({4096}) * 1e-3,
                                 torch::randn({4095})};
  std::vector<at::Tensor> f64 = {torch::randn({7000}, at::kDouble), torch::randn({1}, at::kDouble)};
  std::vector<std::string> names;
  for (size_t i = 0; i < f32.size() + f64.size(); ++i) names.push_back("g" + std::to_string(i));
  auto list = [&](const std::vector<at::Tensor>& gs, size_t first) {
    std::vector<OptimTensor> ts;
    for (size_t i = 0; i < gs.size(); ++i) ts.push_back({names[first + i], gs[i], gs[i]});
    return ts;
  };
  auto a = list(f32, 0), b = list(f64, f32.size()), all = a;
  all.insert(all.end(), b.begin(), b.end());
  int64_t ca = 0, cb = 0;
  auto ta = host_table(a, false, &ca), tb = host_table(b, false, &cb);
  const int64_t na = cuda::grad_sq_partial_count(ca), nb = cuda::grad_sq_partial_count(cb);
  std::vector<double> partials(na + nb);
  ASSERT_EQ(cuda::grad_sq_partials<float>(ta.data(), (int64_t)ta.size(), ca, partials.data(), nullptr), cudaSuccess);
  ASSERT_EQ(cuda::grad_sq_partials<double>(tb.data(), (int64_t)tb.size(), cb, partials.data() + na, nullptr),
            cudaSuccess);
  double worst = 0;
  for (double max_norm : {0.0, 1.0, 1e6}) {
    const auto c = emu_finish(partials.data(), na + nb, max_norm);
    const auto ref = grad_clip_coef_reference(all, max_norm);
    const double norm = ref[0].item<double>(), coef = ref[1].item<double>();
    worst = std::max({worst, std::abs(c[0] - norm) / norm, std::abs(c[1] - coef) / coef});
    EXPECT_LE(std::abs(c[0] - norm) / norm, 1e-13) << max_norm;
    EXPECT_LE(std::abs(c[1] - coef) / coef, 1e-13) << max_norm;
    EXPECT_EQ(c[1] == 1.0, max_norm == 0.0 || max_norm == 1e6);
    // The scale pass against grad.mul_(coefficient), the same coefficient: exact.
    std::vector<at::Tensor> sf, rf;
    for (auto& g : f32) sf.push_back(g.clone()), rf.push_back(g.clone());
    std::vector<at::Tensor> sd, rd;
    for (auto& g : f64) sd.push_back(g.clone()), rd.push_back(g.clone());
    auto sa = list(sf, 0), sb = list(sd, f32.size()), ra = list(rf, 0), rb = list(rd, f32.size());
    int64_t n1 = 0, n2 = 0;
    auto t1 = host_table(sa, false, &n1), t2 = host_table(sb, false, &n2);
    ASSERT_EQ(cuda::grad_scale_multi<float>(t1.data(), (int64_t)t1.size(), n1, c.data(), nullptr), cudaSuccess);
    ASSERT_EQ(cuda::grad_scale_multi<double>(t2.data(), (int64_t)t2.size(), n2, c.data(), nullptr), cudaSuccess);
    ra.insert(ra.end(), rb.begin(), rb.end());
    scale_grads_reference(ra, torch::tensor({c[0], c[1]}, at::kDouble));
    for (size_t i = 0; i < sf.size(); ++i) EXPECT_TRUE(sf[i].equal(rf[i])) << "fp32 grad " << i;
    for (size_t i = 0; i < sd.size(); ++i) EXPECT_TRUE(sd[i].equal(rd[i])) << "fp64 grad " << i;
  }
  // No gradients: {0, 1}, as the reference.
  const auto z = emu_finish(partials.data(), 0, 1.0);
  EXPECT_EQ(z[0], 0.0);
  EXPECT_EQ(z[1], 1.0);
  // More partials than one group (kSumGroup): the two-level sum, against a plain one.
  std::vector<double> many(2 * cuda::kSumGroup + 37);
  double sum = 0;
  for (size_t i = 0; i < many.size(); ++i) many[i] = 0.5 + (double)(i % 7), sum += many[i];
  const auto m = emu_finish(many.data(), (int64_t)many.size(), 1.0);
  EXPECT_LE(std::abs(m[0] - std::sqrt(sum)) / std::sqrt(sum), 1e-15);
  EXPECT_EQ(m[1], 1.0 / (m[0] + 1e-6));
  std::printf("[ emulated grad norm, fp32 + fp64 groups: max rel diff %.3g ]\n", worst);
}

#endif  // DYNARCH_CUDA_EMULATED_TESTS

// --device (core/device.h) and the one kernel-dispatch decision
// (core/forward_context.h): parsing and its errors, and that an op on a tensor
// that is not on the CPU takes its tensor-op reference, never the CPU kernel.
// The non-CPU tensors here are on the "meta" device (shapes without data):
// a CPU kernel on one throws (it reads data_ptr or checks is_cpu), a reference
// returns a meta tensor of the right shape, so the routing is tested without
// a GPU. The CUDA comparisons are in test_cuda.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/device.h"
#include "core/forward_context.h"
#include "expect_error.h"
#include "kernels/cpu/chunk/ema_scan.h"
#include "kernels/cpu/dense/linear_rows.h"
#include "kernels/cpu/dense/norm_act.h"
#include "kernels/cpu/gemm/bmm.h"
#include "kernels/cpu/mamba/causal_conv.h"
#include "kernels/cpu/mamba/mamba_step.h"
#include "kernels/cpu/mamba/ssd_chunked.h"
#include "kernels/cpu/streams/mhc_input.h"
#include "kernels/cpu/streams/sinkhorn.h"
#include "kernels/cpu/streams/stream_mix.h"
#include "model/layers/mamba2.h"
#include "model/layers/norm.h"
#include "train/options.h"

using namespace dynarch;
using dynarch::testutil::expect_error;

namespace {
const c10::Device kCpu(c10::kCPU), kCuda0(c10::kCUDA, 0), kCuda1(c10::kCUDA, 1);
const DeviceFacts kNoCudaBuild{false, 0}, kNoGpu{true, 0}, kOneGpu{true, 1}, kTwoGpus{true, 2};

at::Tensor meta(at::IntArrayRef shape) { return at::empty(shape, at::TensorOptions().device(c10::kMeta)); }
}  // namespace

TEST(Device, ParsesAndResolves) {
  EXPECT_EQ(resolve_device("cpu", kTwoGpus), kCpu);
  EXPECT_EQ(resolve_device("auto", kNoCudaBuild), kCpu);
  EXPECT_EQ(resolve_device("auto", kNoGpu), kCpu);
  EXPECT_EQ(resolve_device("auto", kTwoGpus), kCuda0);
  EXPECT_EQ(resolve_device("cuda", kOneGpu), kCuda0);
  EXPECT_EQ(resolve_device("cuda:0", kOneGpu), kCuda0);
  EXPECT_EQ(resolve_device("cuda:1", kTwoGpus), kCuda1);
  EXPECT_EQ(device_name(kCpu), "cpu");
  EXPECT_EQ(device_name(kCuda1), "cuda:1");
  EXPECT_EQ(resolve_device(device_name(kCuda1), kTwoGpus), kCuda1);
}

TEST(Device, ErrorsNameTheValue) {
  expect_error([] { resolve_device("gpu", kTwoGpus); }, "--device 'gpu' is not a device: use cpu, cuda, cuda:N or auto");
  expect_error([] { resolve_device("CPU", kTwoGpus); }, "--device 'CPU' is not a device");
  expect_error([] { resolve_device("", kTwoGpus); }, "--device '' is not a device");
  expect_error([] { resolve_device("cuda:", kTwoGpus); }, "--device 'cuda:': the device index must be a whole number");
  expect_error([] { resolve_device("cuda:-1", kTwoGpus); }, "'cuda:-1': the device index must be a whole number");
  expect_error([] { resolve_device("cuda:1x", kTwoGpus); }, "'cuda:1x'");
  expect_error([] { resolve_device("cuda", kNoCudaBuild); },
               "--device 'cuda': this build has no CUDA; configure with -DDYNARCH_CUDA=ON");
  expect_error([] { resolve_device("cuda:0", kNoCudaBuild); }, "'cuda:0': this build has no CUDA");
  expect_error([] { resolve_device("cuda", kNoGpu); }, "--device 'cuda': no CUDA device is visible");
  expect_error([] { resolve_device("cuda:1", kOneGpu); }, "--device 'cuda:1': there is 1 CUDA device (cuda:0)");
  expect_error([] { resolve_device("cuda:2", kTwoGpus); }, "'cuda:2': there are 2 CUDA devices (cuda:0 to cuda:1)");
  expect_error([] { resolve_device("cuda:7", kTwoGpus, "run/train_options.json: device"); },
               "run/train_options.json: device 'cuda:7'");
}

// This build and machine: without -DDYNARCH_CUDA, cuda is refused by name.
TEST(Device, ThisBuild) {
  const auto f = device_facts();
  EXPECT_EQ(resolve_device("cpu"), kCpu);
  EXPECT_EQ(resolve_device("auto"), f.cuda_count > 0 ? kCuda0 : kCpu);
#ifndef DYNARCH_CUDA
  EXPECT_FALSE(f.cuda_built);
  expect_error([] { resolve_device("cuda"); }, "--device 'cuda': this build has no CUDA; configure with -DDYNARCH_CUDA=ON");
#endif
}

TEST(Device, TrainOptionsFieldIsOptional) {
  TrainOptions o;
  EXPECT_EQ(o.device, "auto");
  EXPECT_EQ(o.to_json().at("device"), "auto");
  o.device = "cpu";
  EXPECT_EQ(TrainOptions::from_json(o.to_json(), "t").device, "cpu");
  auto old = o.to_json();  // a run from before the field
  old.erase("device");
  EXPECT_EQ(TrainOptions::from_json(old, "t").device, "auto");
  old["device"] = 3;
  expect_error([&] { TrainOptions::from_json(old, "opts.json"); }, "opts.json: wrong type or value for \"device\"");
}

TEST(KernelDispatch, CpuKernelsOnlyOnCpuTensorsAndInFastMode) {
  EXPECT_TRUE(ForwardContext::cpu_kernels_apply(kCpu));
  EXPECT_FALSE(ForwardContext::cpu_kernels_apply(kCuda0));
  EXPECT_FALSE(ForwardContext::cpu_kernels_apply(c10::Device(c10::kMeta)));
  EXPECT_TRUE(forward_context().fast_kernels(kCpu));
  EXPECT_FALSE(forward_context().fast_kernels(kCuda0));
  EXPECT_FALSE(forward_context().fast_kernels(kCuda1));
  {
    ReferenceKernelsScope ref;
    EXPECT_FALSE(forward_context().fast_kernels(kCpu));
    EXPECT_FALSE(forward_context().fast_kernels(kCuda0));
  }
  EXPECT_TRUE(forward_context().fast_kernels(at::zeros({1})));
}

// Mamba2::step in fast mode runs in_proj, mamba_step_core, out_proj where that
// op has a kernel (the CPU; CUDA in a CUDA build, through its hook), else the
// ops (step_reference): the decision for either kind of build, and this one's.
TEST(KernelDispatch, MambaStepFusedOnCpuAndCuda) {
  for (bool cuda_built : {false, true}) {
    EXPECT_TRUE(mamba_step_core_applies(kCpu, cuda_built));
    EXPECT_EQ(mamba_step_core_applies(kCuda0, cuda_built), cuda_built);
    EXPECT_EQ(mamba_step_core_applies(kCuda1, cuda_built), cuda_built);
    EXPECT_FALSE(mamba_step_core_applies(c10::Device(c10::kMeta), cuda_built));
  }
  EXPECT_EQ(mamba_step_core_applies(kCuda0), device_facts().cuda_built);
  // Off the CPU and CUDA the layer takes the ops: a "meta" step gives a meta output.
  Mamba2 m(8, 3, 4, 2, 4, 4);
  auto mc = [](const at::Tensor& t) { return at::empty(t.sizes(), t.options().device(c10::kMeta)); };
  m.in_proj->weight = mc(m.in_proj->weight), m.out_proj->weight = mc(m.out_proj->weight);
  m.conv1d->weight = mc(m.conv1d->weight), m.conv1d->bias = mc(m.conv1d->bias);
  m.dt_bias = mc(m.dt_bias), m.A_log = mc(m.A_log), m.D = mc(m.D), m.norm->weight = mc(m.norm->weight);
  LayerCache c{mc(at::zeros({2, m.conv_dim, 4})), mc(at::zeros({2, m.nheads, 4, 3}))};
  torch::NoGradGuard ng;
  auto y = m.step(meta({2, 8}), c, {});
  EXPECT_TRUE(y.is_meta());
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{2, 8}));
}

TEST(KernelDispatch, DeviceScopeNestsAndRestores) {
  EXPECT_EQ(forward_context().device, kCpu);
  {
    DeviceScope on(kCuda1);
    EXPECT_EQ(forward_context().device, kCuda1);
    {
      ReferenceKernelsScope ref;
      EXPECT_EQ(forward_context().device, kCuda1);
    }
  }
  EXPECT_EQ(forward_context().device, kCpu);
}

// Each kernel entry with a reference beside it hands a non-CPU tensor to it.
TEST(KernelDispatch, KernelEntriesTakeTheReferenceOffTheCpu) {
  const int64_t T = 6, n = 4, D = 8, K = n * n + 2 * n;
  auto X = meta({T, n, D});
  EXPECT_EQ(hc_pre_mix(X, meta({T, n})).sizes(), (at::IntArrayRef{T, D}));
  EXPECT_EQ(hc_post_res(X, meta({T, n, n}), meta({T, n}), meta({T, D})).sizes(), (at::IntArrayRef{T, n, D}));
  EXPECT_EQ(mhc_project(X, meta({K, n * D}), 1e-6).sizes(), (at::IntArrayRef{T, K}));
  auto p = mhc_pre(X, meta({K, n * D}), meta({K}), meta({3}), 1e-6, 0.0);
  EXPECT_EQ(p.Z.sizes(), (at::IntArrayRef{T, n, n}));
  EXPECT_TRUE(p.u.is_meta());
  auto m = mhc_merge_pre(X, meta({T, n, n}), meta({T, n}), meta({T, D}), meta({K, n * D}), meta({K}), meta({3}),
                         1e-6, 0.0);
  EXPECT_EQ(m.X.sizes(), (at::IntArrayRef{T, n, D}));
  EXPECT_EQ(sinkhorn(meta({T, n, n}), SinkhornOptions{}).sizes(), (at::IntArrayRef{T, n, n}));
  EXPECT_EQ(ema_scan(meta({2, 5, D}), meta({2, 5})).sizes(), (at::IntArrayRef{2, 5, D}));
  EXPECT_EQ(swiglu_fused(meta({3, 2 * D})).sizes(), (at::IntArrayRef{3, D}));
  EXPECT_EQ(bmm_small(meta({2, 3, 4, 5}), meta({2, 3, 5, 6})).sizes(), (at::IntArrayRef{2, 3, 4, 6}));
  auto ssd = ssd_chunk_scan(meta({2, 9, 3, 4}), meta({2, 9, 3}), meta({3}), meta({2, 9, 5}), meta({2, 9, 5}), 4);
  EXPECT_EQ(ssd.y.sizes(), (at::IntArrayRef{2, 9, 3, 4}));
  EXPECT_EQ(ssd.state.sizes(), (at::IntArrayRef{2, 3, 4, 5}));
  // Packed rows (Mamba2::forward_packed off the CPU): the device ops with starts on the data's device.
  auto starts = at::empty({9}, at::TensorOptions(at::kLong).device(c10::kMeta));
  auto ssdp = ssd_chunk_scan(meta({1, 9, 3, 4}), meta({1, 9, 3}), meta({3}), meta({1, 9, 5}), meta({1, 9, 5}), 4, {},
                             starts);
  EXPECT_EQ(ssdp.y.sizes(), (at::IntArrayRef{1, 9, 3, 4}));
  EXPECT_EQ(causal_conv1d_silu(meta({1, 9, 6}), meta({6, 1, 4}), meta({6}), {}, starts).sizes(),
            (at::IntArrayRef{1, 9, 6}));
  {
    torch::NoGradGuard ng;  // the decode GEMV's case: few rows, no autograd
    EXPECT_EQ(linear_rows(meta({2, D}), meta({5, D})).sizes(), (at::IntArrayRef{2, 5}));
  }
  RMSNorm norm(D);  // (Module::to cannot move parameters to "meta" in 1.13: swap the weight)
  EXPECT_FALSE(norm.forward(at::ones({3, D})).is_meta());
  norm.weight = meta({D});
  EXPECT_TRUE(norm.forward(meta({3, D})).is_meta());
}

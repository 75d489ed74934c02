// The forward context: what a model run carries besides its tensors, in one
// place. It is a documented scoped mechanism rather than an argument threaded
// through every module: a ForwardScope installs a context for this thread and
// restores the previous one at its end, so nested scopes compose (a recorder
// inside a reference-mode test, a kernel variant inside a benchmark).
//
//   mode      fast | reference: the fused kernels, or the plain tensor-op
//             references they are tested against (Mamba-2 sequential scan and
//             op-by-op step, attention step by matmul/softmax, HC/mHC mixing
//             and Sinkhorn by tensor ops).
//   variants  kernel variants for A/B benchmarks and tests (all off = default).
//   packed    inner H-Net stages run their stacks on packed sequences
//             (model/layers/packing.h) instead of the batch padded to its
//             longest row of chunks; the padded form is the reference.
//             Only forwards without a state (training, eval) pack.
//   device    where the run's parameters, caches and batches live (set by
//             the verbs from --device; code that makes a tensor with no
//             input at hand puts it there).
//   sinks     recorders a forward appends to when set: H-Net stage traces
//             (ratio loss, chunk views), HC/mHC connection maps (stability
//             gains), H-Model routes, auxiliary loss terms.
//
// The context is read on the thread that runs the model; on the CPU, LibTorch
// runs a backward pass on the thread that calls backward(), so a scope that
// spans forward and backward also sets the kernels of the backward.
// Which implementation an op runs is decided by two functions below and
// nowhere else: the fused kernels under kernels/cpu take CPU tensors only, so
// on any other device every op takes its plain tensor-op reference, which runs
// anywhere (a CUDA build computes correctly before a CUDA kernel exists).
// Nothing here is part of a model config: a run's config.json never changes
// with a test or benchmark switch.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace dynarch {

struct StageTrace;       // model/hnet/hnet_stage.h
struct ConnectionTrace;  // model/residual/residual.h
struct RouteTrace;       // model/hmodel/hmodel_metrics.h

enum class KernelMode { fast, reference };

struct KernelVariants {
  bool stream_weights = false;  // linear_rows: non-temporal weight prefetch (set by H-Net decode, inner stage)
  bool bf16_weights = false;    // linear_rows: bf16 weight copies, fp32 accumulation (opt-in decode numerics)
  bool block_gemv = false;      // linear_rows: the 4-row block kernel also for 1-2 rows
  bool unfused_step = false;    // decode: Mamba-2 block steps op by op (mamba_block_step declines)
  bool separate_merge = false;  // mHC: settle each merge with hc_post_res instead of mhc_merge_pre
  bool blas_skinny = false;     // mHC input op: BLAS instead of the skinny GEMM kernels
};

// An extra training objective term: the trainer adds weight * value to the
// task loss and logs value; weight 0 = logged only.
struct AuxTerm {
  std::string name;
  at::Tensor value;  // scalar, differentiable
  double weight;
};

struct ForwardContext {
  KernelMode mode = KernelMode::fast;
  KernelVariants variants;
  bool packed = true;  // train --packed, bench_packing; PackingScope
  std::vector<StageTrace>* stage_traces = nullptr;
  std::vector<ConnectionTrace>* connections = nullptr;
  std::vector<RouteTrace>* routes = nullptr;
  std::vector<AuxTerm>* aux = nullptr;
  c10::Device device{c10::kCPU};

  bool reference() const { return mode == KernelMode::reference; }
  // The fused CPU kernel of an op that has a reference form: fast mode and a
  // CPU tensor. Anything else takes the reference.
  bool fast_kernels(const c10::Device& d) const { return !reference() && cpu_kernels_apply(d); }
  bool fast_kernels(const at::Tensor& t) const { return fast_kernels(t.device()); }

  // The CPU kernels run on CPU tensors only (for ops whose fused kernel is not
  // switched by the mode: norms, SwiGLU, the EMA scan, decode GEMVs, bmm).
  static bool cpu_kernels_apply(const c10::Device& d) { return d.is_cpu(); }
  static bool cpu_kernels_apply(const at::Tensor& t) { return cpu_kernels_apply(t.device()); }
};

// This thread's context (defaults when no scope is alive).
const ForwardContext& forward_context();

// Installs edit(copy of the current context) for this thread while alive.
class ForwardScope {
 public:
  template <class Edit>
  explicit ForwardScope(Edit&& edit) : prev_(forward_context()) {
    ForwardContext c = prev_;
    edit(c);
    install(c);
  }
  ~ForwardScope() { install(prev_); }
  ForwardScope(const ForwardScope&) = delete;
  ForwardScope& operator=(const ForwardScope&) = delete;

 private:
  static void install(const ForwardContext& c);
  ForwardContext prev_;
};

// The common scopes by name.
struct ReferenceKernelsScope : ForwardScope {  // mode = reference
  ReferenceKernelsScope() : ForwardScope([](ForwardContext& c) { c.mode = KernelMode::reference; }) {}
};
struct DeviceScope : ForwardScope {  // the run's device
  explicit DeviceScope(c10::Device d) : ForwardScope([d](ForwardContext& c) { c.device = d; }) {}
};
struct PackingScope : ForwardScope {  // packed = on
  explicit PackingScope(bool on) : ForwardScope([on](ForwardContext& c) { c.packed = on; }) {}
};
template <bool KernelVariants::*Flag>
struct VariantScope : ForwardScope {
  VariantScope() : ForwardScope([](ForwardContext& c) { c.variants.*Flag = true; }) {}
};
using StreamWeightsScope = VariantScope<&KernelVariants::stream_weights>;
using Bf16WeightsScope = VariantScope<&KernelVariants::bf16_weights>;
using BlockGemvScope = VariantScope<&KernelVariants::block_gemv>;
using UnfusedStepScope = VariantScope<&KernelVariants::unfused_step>;
using SeparateMergeScope = VariantScope<&KernelVariants::separate_merge>;
using BlasSkinnyScope = VariantScope<&KernelVariants::blas_skinny>;

// The recorders (ConnectionRecorder, RouteRecorder, StageRecorder,
// AuxLossCollector) are small classes beside their trace types that hold a
// vector and a ForwardScope pointing the context's sink at it.

// Appends a loss term if a sink is installed.
void add_aux_loss(const std::string& name, const at::Tensor& value, double weight);

}  // namespace dynarch

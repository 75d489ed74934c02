// What the optimizer ops (adamw_step, grad_clip) take: the tensors of each
// parameter, the per-parameter settings, and the state the CUDA launches keep
// between steps. Device-independent; train/adamw.* builds the lists.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string_view>
#include <vector>

#if DYNARCH_CUDA
#include "kernels/cuda/optim/multi_tensor_cuda.h"
#endif

namespace dynarch {

struct OptimTensor {
  std::string_view name;  // the parameter's (errors name it); must outlive the call
  at::Tensor param, grad;
  at::Tensor exp_avg, exp_avg_sq;  // adamw_step only
  double lr_mult = 1.0;
  bool decay = true;  // decoupled weight decay applies
};

// Kept by the caller between calls with the same list of tensors (an optimizer
// holds one for its norm, one for its update): the CUDA multi-tensor launches'
// per-tensor tables on the device, copied there again only when a pointer, size
// or flag changes (a gradient allocated, a model moved). Opaque here; unused on
// the CPU. Null: a table is made for the call.
struct MultiTensorCache {
  std::shared_ptr<void> state;
};

// Errors naming the op and the tensor: every param and grad defined (and with
// `moments` exp_avg, exp_avg_sq), each with its parameter's shape, dtype and
// device, every parameter on the first one's device.
void check_optim_tensors(const char* op, const std::vector<OptimTensor>& ts, bool moments);

// The fused CUDA kernels' limits: every tensor on CUDA, fp32 or fp64,
// contiguous (the kernels walk flat memory); with `moments` the moments too.
// Outside them (or in KernelMode::reference) the ops run their references.
bool cuda_optim_applies(const std::vector<OptimTensor>& ts, bool moments);

// clip as the ops take it: undefined, or fp64 {norm, coefficient} on `device`.
void check_clip(const char* op, const at::Tensor& clip, const at::Device& device);

#if DYNARCH_CUDA
// The list as the CUDA bindings take it.
std::vector<cuda::ParamTensors> cuda_param_tensors(const std::vector<OptimTensor>& ts);
#endif

}  // namespace dynarch

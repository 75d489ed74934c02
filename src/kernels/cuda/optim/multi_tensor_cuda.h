// What the optimizer bindings (adamw_cuda, grad_clip_cuda; DYNARCH_CUDA builds
// only) share: the tensors of a parameter, their checks, and the per-tensor
// tables kept on the device between steps.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string_view>
#include <vector>

#include "kernels/cuda/optim/multi_tensor.h"

namespace dynarch::cuda {

// One parameter (the CPU op's OptimTensor; m and v undefined for the norm).
struct ParamTensors {
  std::string_view name;
  at::Tensor p, g, m, v;
  double lr_mult = 1.0;
  bool decay = false;
};

// The device copies of a call's tables, one slot per dtype group. A slot is
// copied to the device again only when its table changes: a pointer, a size
// or a flag (a gradient allocated, a model moved); otherwise a step costs no
// host-to-device copy.
class TableCache {
 public:
  // Device address of `host`'s copy in `slot` (an asynchronous copy from pinned
  // memory on the current stream when it changed).
  const TensorMeta* upload(size_t slot, std::vector<TensorMeta>&& host, const at::Device& device);

 private:
  struct Slot {
    std::vector<TensorMeta> host;
    at::Tensor device;
  };
  std::vector<Slot> slots_;
};

// The cache kept in an op's MultiTensorCache::state (made on first use).
TableCache& table_cache(std::shared_ptr<void>& state);

// The binding's limits, errors naming the op and the tensor: every tensor on
// CUDA on the first parameter's device, fp32 or fp64 like its parameter, with
// its numel, contiguous; with `moments` m and v too.
void check_param_tensors(const char* op, const std::vector<ParamTensors>& ts, bool moments);
// The clip coefficient {norm, s} of grad_clip_coef: 2 contiguous fp64 values on `dev`.
void check_clip(const char* op, const at::Tensor& clip, const at::Device& dev);

// The table of the tensors of type `dtype` in list order, chunks assigned; p,
// m, v and the flags only with `moments`.
struct HostTable {
  std::vector<TensorMeta> metas;
  int64_t chunks = 0;
};
HostTable table_of(const std::vector<ParamTensors>& ts, at::ScalarType dtype, bool moments);

// The dtype groups, one launch each: fp32 first, then fp64.
constexpr at::ScalarType kOptimDtypes[] = {at::kFloat, at::kDouble};

}  // namespace dynarch::cuda

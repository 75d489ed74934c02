// The device a verb runs its model on: `--device cpu|cuda|cuda:N|auto` (one
// parser for every verb and benchmark, and the `device` field of
// train_options.json). Which kernels run on that device is decided in
// core/forward_context.h (cpu_kernels_apply).
#pragma once
#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace dynarch {

// The facts resolve_device decides on: whether this build has CUDA code paths
// (-DDYNARCH_CUDA=ON) and how many CUDA devices are visible.
struct DeviceFacts {
  bool cuda_built = false;
  int cuda_count = 0;
};
DeviceFacts device_facts();  // this build, this machine

// Parses and checks a --device value. `auto` is CUDA device 0 when the build
// has CUDA and a GPU is visible, else the CPU; `cuda` is `cuda:0`. Throws
// UserError naming the value: an unknown string, CUDA in a build without it,
// CUDA with no GPU visible, cuda:N beyond the device count. `what` names the
// source in messages ("--device", "run/checkpoint/train_options.json: device").
c10::Device resolve_device(const std::string& spec, const std::string& what = "--device");
c10::Device resolve_device(const std::string& spec, const DeviceFacts& facts, const std::string& what = "--device");

// "cpu", "cuda:0" (what --device accepts back).
std::string device_name(const c10::Device& d);

// Waits for the work queued on `d` (a no-op on the CPU): timings of
// asynchronous devices end here.
void synchronize(const c10::Device& d);

// Host integers (row indices, positions) as an int64 tensor on `d`. On CUDA the
// copy is asynchronous from pinned memory: a plain .to(cuda) from pageable
// memory waits for the stream, a stall per call in a decode step.
at::Tensor index_tensor(const std::vector<int64_t>& v, const c10::Device& d);

// Peak bytes held by tensors on `d` since the last reset_peak_memory(d) (CUDA's
// caching allocator); -1 where not tracked (the CPU).
int64_t peak_memory_bytes(const c10::Device& d);
void reset_peak_memory(const c10::Device& d);
// Bytes held by tensors on `d` now (-1 where not tracked).
int64_t allocated_memory_bytes(const c10::Device& d);

// The help text of every --device option.
inline constexpr const char* kDeviceHelp =
    "cpu, cuda, cuda:N or auto (CUDA when this build has it and a GPU is visible, else cpu)";

}  // namespace dynarch

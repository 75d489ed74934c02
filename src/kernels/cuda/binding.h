// What every torch binding of a CUDA kernel shares (built with DYNARCH_CUDA
// only): argument checks whose errors name the op and the tensor, the current
// stream, and the launch check.
#pragma once
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <string>

#include "core/error.h"

namespace dynarch::cuda {

// t is a CUDA tensor on `device` with dtype one of `dtypes`.
inline void check_tensor(const char* op, const char* name, const at::Tensor& t, const at::Device& device,
                         std::initializer_list<at::ScalarType> dtypes) {
  check(t.defined(), std::string(op) + ": " + name + " is undefined");
  check(t.device() == device,
        std::string(op) + ": " + name + " is on " + t.device().str() + ", expected " + device.str());
  bool ok = false;
  std::string names;
  for (auto d : dtypes)
    ok = ok || t.scalar_type() == d, names += std::string(names.empty() ? "" : "/") + c10::toString(d);
  check(ok, std::string(op) + ": " + name + " must be " + names + ", got " + c10::toString(t.scalar_type()));
}

inline void check_shape(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef shape) {
  check(t.sizes() == shape,
        std::string(op) + ": " + name + " must have shape " + c10::str(shape) + ", got " + c10::str(t.sizes()));
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Every launcher returns cudaGetLastError() of its launches.
inline void check_launch(cudaError_t e, const char* what) {
  check(e == cudaSuccess, std::string(what) + ": CUDA kernel launch failed: " + cudaGetErrorString(e));
}

}  // namespace dynarch::cuda

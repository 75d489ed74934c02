#include "core/device.h"

#include <torch/cuda.h>
#ifdef DYNARCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace dynarch {

DeviceFacts device_facts() {
#ifdef DYNARCH_CUDA
  return {true, torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0};
#else
  return {false, 0};
#endif
}

c10::Device resolve_device(const std::string& spec, const std::string& what) {
  // The CPU needs no facts (asking CUDA for its device count initialises it).
  if (spec == "cpu") return c10::Device(c10::kCPU);
  return resolve_device(spec, device_facts(), what);
}

c10::Device resolve_device(const std::string& spec, const DeviceFacts& f, const std::string& what) {
  const std::string shown = what + " '" + spec + "'";
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "auto") return f.cuda_built && f.cuda_count > 0 ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  int index = 0;
  if (spec.rfind("cuda:", 0) == 0) {
    const std::string n = spec.substr(5);
    const bool digits = !n.empty() && n.size() <= 4 &&
                        std::all_of(n.begin(), n.end(), [](unsigned char c) { return std::isdigit(c); });
    if (!digits) fail(shown + ": the device index must be a whole number (cuda:0, cuda:1, ...)");
    index = std::stoi(n);
  } else if (spec != "cuda") {
    fail(shown + " is not a device: use cpu, cuda, cuda:N or auto");
  }
  if (!f.cuda_built) fail(shown + ": this build has no CUDA; configure with -DDYNARCH_CUDA=ON");
  if (f.cuda_count == 0) fail(shown + ": no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)");
  if (index >= f.cuda_count)
    fail(shown + ": there " + (f.cuda_count == 1 ? "is 1 CUDA device" : "are " + std::to_string(f.cuda_count) +
                                                                              " CUDA devices") +
         " (cuda:0" + (f.cuda_count > 1 ? " to cuda:" + std::to_string(f.cuda_count - 1) : "") + ")");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

void synchronize(const c10::Device& d) {
#ifdef DYNARCH_CUDA
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
#else
  (void)d;
#endif
}

at::Tensor index_tensor(const std::vector<int64_t>& v, const c10::Device& d) {
  auto t = at::tensor(v, at::kLong);
  if (d.is_cpu()) return t;
#ifdef DYNARCH_CUDA
  if (d.is_cuda()) return t.pin_memory().to(d, /*non_blocking=*/true);  // the host allocator keeps it until copied
#endif
  return t.to(d);
}

// allocated_bytes[0]: the AGGREGATE statistic (StatType's first value in 1.13 and
// 2.x alike; its namespace moved between them, the index did not).
int64_t peak_memory_bytes(const c10::Device& d) {
#ifdef DYNARCH_CUDA
  if (d.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0).allocated_bytes[0].peak;
#endif
  (void)d;
  return -1;
}

int64_t allocated_memory_bytes(const c10::Device& d) {
#ifdef DYNARCH_CUDA
  if (d.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0).allocated_bytes[0].current;
#endif
  (void)d;
  return -1;
}

void reset_peak_memory(const c10::Device& d) {
#ifdef DYNARCH_CUDA
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
#endif
  (void)d;
}

std::string device_name(const c10::Device& d) {
  if (d.is_cpu()) return "cpu";
  return d.str();  // "cuda:0"
}

}  // namespace dynarch

#include "train/step_metrics.h"

#include "core/error.h"

namespace dynarch {

void StepMetrics::add(double& dst, const at::Tensor& value, double div) {
  check(value.defined() && value.numel() == 1, "StepMetrics: a metric must be a one-element tensor");
  items_.push_back({&dst, value.detach().reshape({}), div});
}

void StepMetrics::read() {
  // fp64 on the device (exact for fp32 / bf16 / integer scalars), one stacked copy.
  std::vector<at::Tensor> off_cpu;
  for (auto& it : items_)
    if (!it.value.is_cpu()) off_cpu.push_back(it.value.to(at::kDouble));
  at::Tensor host = off_cpu.empty() ? at::Tensor() : at::stack(off_cpu).to(at::kCPU);
  int64_t k = 0;
  for (auto& it : items_) {
    const double v = it.value.is_cpu() ? it.value.item<double>() : host[k++].item<double>();
    *it.dst += v / it.div;  // v / 1 == v exactly
  }
  items_.clear();
}

}  // namespace dynarch

// A training step's metrics as device scalars, read to the host in one copy
// per step: on a GPU each .item() waits for the queue to drain, so a read per
// value (loss, aux terms, ratio statistics per stage and micro-batch) would
// stall the step once each.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "train/objective.h"

namespace dynarch {

class StepMetrics {
 public:
  explicit StepMetrics(Metrics& sums) : sums_(sums) {}
  // Queues sums[key] += value / div (value: a one-element tensor, any dtype and device).
  void add(const std::string& key, const at::Tensor& value, double div = 1.0) { add(sums_[key], value, div); }
  // Queues dst += value / div; dst must outlive read().
  void add(double& dst, const at::Tensor& value, double div = 1.0);
  // Copies every queued value to the host (one copy for those off the CPU) and
  // adds them in the order queued: the same fp64 additions as reading each at once.
  void read();

 private:
  struct Item {
    double* dst;
    at::Tensor value;
    double div;
  };
  Metrics& sums_;
  std::vector<Item> items_;
};

}  // namespace dynarch

// What the one training loop (train/loop.h) trains for: the batches, the task
// loss with its metrics, and the validation. The loop adds what every task
// shares: the model's auxiliary losses (H-Model routing terms), H-Net ratio
// losses, the H-Model alpha schedule, stream-gain monitoring, the LR schedule,
// accumulation, clipping, metrics, checkpoints and stop handling.
#pragma once
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace dynarch {

class ByteLM;
class StepMetrics;

// Named step metrics: objectives add each micro-batch's values, the loop
// divides the sums by the number of micro-batches.
using Metrics = std::map<std::string, double>;

class Objective {
 public:
  virtual ~Objective() = default;
  // The task loss of micro-batch `micro` (of `accum`) of step `step`, computed
  // inside the loop's recorders; queues this micro-batch's metrics on `m`
  // ("loss" among them; train/step_metrics.h: read once per step).
  virtual at::Tensor loss(ByteLM& model, int64_t step, int64_t micro, int64_t accum, StepMetrics& m) = 0;
  // Validation in two halves, so that data-parallel ranks can split it: sums
  // over this rank's share of the validation set, and the metrics of a line
  // (e.g. {"val_bpb": …}) from the sums over every rank.
  virtual std::vector<double> validation_sums(ByteLM& model) = 0;
  virtual nlohmann::json validation_metrics(const std::vector<double>& sums) const = 0;
  // Data parallelism: this process is `rank` of `world`; its micro-batches are
  // its slice of the global ones, and validation its share.
  void set_shard(int rank, int world) { rank_ = rank, world_ = world; }
  // Units trained per optimizer step and the metric key of their rate.
  virtual double units_per_step() const = 0;
  virtual std::string rate_key() const = 0;
  // Progress-bar text from the smoothed metrics, the last validation (null
  // before the first) and the current rate; and the final summary.
  virtual std::string progress(const Metrics& ema, const nlohmann::json& val, double rate) const = 0;
  virtual std::string summary(const nlohmann::json& val) const = 0;

 protected:
  int rank_ = 0, world_ = 1;
};

}  // namespace dynarch

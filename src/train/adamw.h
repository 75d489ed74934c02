// AdamW with per-parameter LR multipliers and weight-decay flags. Our own
// (not torch::optim) so its state is plain named tensors for safetensors.
#pragma once
#include "model/lm.h"

namespace dynarch {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

class AdamW {
 public:
  AdamW(std::vector<ParamInfo> params, AdamWOptions o);
  // One update with base learning rate `lr` (times each parameter's multiplier).
  void step(double lr);
  void zero_grad();
  int64_t steps_taken() const { return t_; }
  // State as named tensors: "exp_avg.<param>", "exp_avg_sq.<param>".
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  // Restores state; missing or mis-shaped entries are an error naming them.
  void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t t, const std::string& source);
  const std::vector<ParamInfo>& params() const { return params_; }

  // ZeRO stage 1: keep the moments of this rank's parameters only (each
  // parameter has one owner; greedy by size, deterministic). step() then
  // updates owned parameters only and the state holds owned entries only.
  void shard(int rank, int world);
  int owner(size_t i) const { return owner_.empty() ? rank_ : owner_[i]; }
  bool owned(size_t i) const { return owner(i) == rank_; }
  // Elements of optimizer state this rank holds (both moments).
  int64_t state_numel() const;

 private:
  std::vector<ParamInfo> params_;
  std::vector<at::Tensor> m_, v_;  // undefined where another rank owns the parameter
  std::vector<int> owner_;          // empty: not sharded
  int rank_ = 0;
  AdamWOptions o_;
  int64_t t_ = 0;
};

// Global L2 norm of all gradients; scales them down to max_norm if larger
// (max_norm <= 0 disables clipping). Returns the norm before clipping.
double clip_grad_norm(const std::vector<ParamInfo>& params, double max_norm);

// Warmup-stable-decay: linear warm-up over warmup*total steps, constant, then
// over the last decay*total steps a "1 - sqrt" cool-down to min_ratio*peak.
double wsd_lr(int64_t step, int64_t total, double peak, double warmup, double decay, double min_ratio = 0.0);

}  // namespace dynarch

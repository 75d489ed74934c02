// AdamW with per-parameter LR multipliers and weight-decay flags. Our own
// (not torch::optim) so its state is plain named tensors for safetensors.
#pragma once
#include "kernels/cpu/optim/optim_tensor.h"
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
  // clip_grad_norm(params(), max_norm) then step(lr), as the training loop runs
  // them; returns the norm before clipping. A norm that is not finite updates
  // nothing (parameters, moments, step count: the caller stops the run). On
  // CUDA (kernels/cpu/optim): norm, coefficient and update are queued on the
  // device and the norm is read once, after the update, the step's only host
  // sync; the fused update scales the gradients as it reads them and leaves
  // them unclipped (on the CPU they are clipped in place, as before).
  double clip_and_step(double lr, double max_norm);
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
  MultiTensorCache norm_cache_, step_cache_;  // the CUDA launches' tables

  std::vector<OptimTensor> grads() const;    // every parameter with a gradient (the norm)
  std::vector<OptimTensor> updates() const;  // those this rank owns (the update)
  void update(double lr, const at::Tensor& clip);
};

// Global L2 norm of all gradients; scales them down to max_norm if larger
// (max_norm <= 0 disables clipping). Returns the norm before clipping. On CUDA
// two or three launches and one host read (kernels/cpu/optim/grad_clip.h).
double clip_grad_norm(const std::vector<ParamInfo>& params, double max_norm);

// Warmup-stable-decay: linear warm-up over warmup*total steps, constant, then
// over the last decay*total steps a "1 - sqrt" cool-down to min_ratio*peak.
double wsd_lr(int64_t step, int64_t total, double peak, double warmup, double decay, double min_ratio = 0.0);

}  // namespace dynarch

#include "train/adamw.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/cpu/optim/adamw_step.h"
#include "kernels/cpu/optim/grad_clip.h"

namespace dynarch {

AdamW::AdamW(std::vector<ParamInfo> params, AdamWOptions o) : params_(std::move(params)), o_(o) {
  for (auto& p : params_) {
    m_.push_back(at::zeros_like(p.param, at::MemoryFormat::Contiguous));
    v_.push_back(at::zeros_like(p.param, at::MemoryFormat::Contiguous));
  }
}

void AdamW::shard(int rank, int world) {
  rank_ = rank;
  owner_.assign(params_.size(), 0);
  std::vector<int64_t> load(world, 0);
  std::vector<size_t> order(params_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return params_[a].param.numel() > params_[b].param.numel(); });
  for (size_t i : order) {  // largest first, to the least-loaded rank (lowest index on ties)
    const int r = (int)(std::min_element(load.begin(), load.end()) - load.begin());
    owner_[i] = r;
    load[r] += params_[i].param.numel();
  }
  for (size_t i = 0; i < params_.size(); ++i)
    if (!owned(i)) m_[i] = at::Tensor(), v_[i] = at::Tensor();
}

int64_t AdamW::state_numel() const {
  int64_t n = 0;
  for (size_t i = 0; i < params_.size(); ++i)
    if (m_[i].defined()) n += m_[i].numel() + v_[i].numel();
  return n;
}

void AdamW::zero_grad() {
  // One multi-tensor launch on CUDA (a loop of zero_() on the CPU), not a launch per parameter.
  std::vector<at::Tensor> gs;
  for (auto& p : params_)
    if (p.param.grad().defined()) gs.push_back(p.param.mutable_grad());
  if (!gs.empty()) at::_foreach_zero_(gs);
}

std::vector<OptimTensor> AdamW::grads() const {
  std::vector<OptimTensor> out;
  for (const auto& p : params_)
    if (p.param.grad().defined()) out.push_back({p.name, p.param, p.param.grad()});
  return out;
}

std::vector<OptimTensor> AdamW::updates() const {
  std::vector<OptimTensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    if (!p.param.grad().defined() || !owned(i)) continue;
    out.push_back({p.name, p.param, p.param.grad(), m_[i], v_[i], p.lr_mult, p.weight_decay});
  }
  return out;
}

void AdamW::update(double lr, const at::Tensor& clip) {
  ++t_;
  const double bc1 = 1.0 - std::pow(o_.beta1, (double)t_);
  const double bc2 = 1.0 - std::pow(o_.beta2, (double)t_);
  adamw_step(updates(), {lr, o_.beta1, o_.beta2, o_.eps, o_.weight_decay, bc1, bc2}, clip, &step_cache_);
}

void AdamW::step(double lr) { update(lr, at::Tensor()); }

double AdamW::clip_and_step(double lr, double max_norm) {
  const auto gs = grads();
  if (gs.empty()) {  // as clip_grad_norm (0) then step (nothing to update)
    ++t_;
    return 0.0;
  }
  const auto clip = grad_clip_coef(gs, max_norm, &norm_cache_);
  update(lr, clip);
  const double norm = clip[0].item<double>();  // after the update is queued
  if (!std::isfinite(norm)) --t_;              // the update skipped itself
  return norm;
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!owned(i)) continue;
    out.emplace_back("exp_avg." + params_[i].name, m_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].name, v_[i]);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& ts, int64_t t, const std::string& src) {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!owned(i)) continue;
    for (auto [prefix, dst] : {std::pair{"exp_avg.", &m_[i]}, std::pair{"exp_avg_sq.", &v_[i]}}) {
      auto key = prefix + params_[i].name;
      auto it = ts.find(key);
      if (it == ts.end()) fail(src + ": optimizer state lacks " + key);
      if (it->second.sizes() != dst->sizes()) fail(src + ": optimizer state " + key + " has the wrong shape");
      if (it->second.scalar_type() != dst->scalar_type())
        fail(src + ": optimizer state " + key + " is declared " + io::dtype_name(it->second.scalar_type()) +
             ", expected " + io::dtype_name(dst->scalar_type()));
      dst->copy_(it->second);
    }
  }
  t_ = t;
}

double clip_grad_norm(const std::vector<ParamInfo>& params, double max_norm) {
  std::vector<OptimTensor> ts;
  for (const auto& p : params)
    if (p.param.grad().defined()) ts.push_back({p.name, p.param, p.param.grad()});
  if (ts.empty()) return 0.0;
  MultiTensorCache tables;  // one call: the norm's table serves the scale too
  const auto clip = grad_clip_coef(ts, max_norm, &tables);
  if (max_norm > 0) scale_grads(ts, clip, &tables);
  return clip[0].item<double>();  // the one host read
}

double wsd_lr(int64_t step, int64_t total, double peak, double warmup, double decay, double min_ratio) {
  const double nw = std::max(1.0, warmup * total), nd = decay * total;
  const double s = (double)step;
  if (s < nw) return peak * (s + 1) / nw;
  const double dstart = total - nd;
  if (nd <= 0 || s < dstart) return peak;
  double frac = std::min(1.0, (s - dstart) / nd);
  return peak * (min_ratio + (1.0 - min_ratio) * (1.0 - std::sqrt(frac)));
}

}  // namespace dynarch

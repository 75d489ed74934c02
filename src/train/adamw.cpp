#include "train/adamw.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/error.h"
#include "io/safetensors.h"

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
  for (auto& p : params_)
    if (p.param.grad().defined()) p.param.mutable_grad().zero_();
}

void AdamW::step(double lr) {
  torch::NoGradGuard ng;
  ++t_;
  const double bc1 = 1.0 - std::pow(o_.beta1, (double)t_);
  const double bc2 = 1.0 - std::pow(o_.beta2, (double)t_);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].param;
    if (!p.grad().defined() || !owned(i)) continue;
    const auto& g = p.grad();
    const double plr = lr * params_[i].lr_mult;
    m_[i].mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
    v_[i].mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
    if (params_[i].weight_decay && o_.weight_decay > 0) p.mul_(1.0 - plr * o_.weight_decay);
    auto denom = (v_[i].sqrt() / std::sqrt(bc2)).add_(o_.eps);
    p.addcdiv_(m_[i], denom, -plr / bc1);
  }
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
  torch::NoGradGuard ng;
  // Summed on the parameters' device in parameter order (the same fp64 additions
  // as a host loop) and read once: one host sync per step, not one per parameter.
  at::Tensor sq;
  for (auto& p : params) {
    if (!p.param.grad().defined()) continue;
    auto s = p.param.grad().to(at::kDouble).pow(2).sum();
    sq = sq.defined() ? sq + s : s;
  }
  const double norm = sq.defined() ? std::sqrt(sq.item<double>()) : 0.0;
  if (max_norm > 0 && norm > max_norm) {
    double s = max_norm / (norm + 1e-6);
    for (auto& p : params)
      if (p.param.grad().defined()) p.param.mutable_grad().mul_(s);
  }
  return norm;
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

#include "dist/reducer.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

namespace dynarch::dist {

namespace {

// Calls back after a parameter's gradient has been accumulated in a backward.
struct ReadyHook : torch::autograd::FunctionPostHook {
  std::function<void()> fn;
  explicit ReadyHook(std::function<void()> f) : fn(std::move(f)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    fn();
    return outputs;
  }
};

}  // namespace

GradReducer::GradReducer(Group& g, const std::vector<at::Tensor>& params, int64_t bucket_bytes) : group_(g) {
  for (auto& p : params)
    if (p.requires_grad()) params_.push_back(p);
  bucket_of_.assign(params_.size(), -1);
  ready_.assign(params_.size(), false);
  // Reverse registration order; a new bucket at the size limit or a dtype change.
  int64_t bytes = 0;
  for (int64_t i = (int64_t)params_.size() - 1; i >= 0; --i) {
    const auto& p = params_[i];
    const bool fresh = buckets_.empty() || bytes >= bucket_bytes ||
                       params_[buckets_.back().params.front()].scalar_type() != p.scalar_type();
    if (fresh) buckets_.emplace_back(), bytes = 0;
    buckets_.back().params.push_back(i);
    bucket_of_[i] = (int64_t)buckets_.size() - 1;
    bytes += p.numel() * p.element_size();
  }
  for (auto& b : buckets_) {
    int64_t n = 0;
    for (auto i : b.params) n += params_[i].numel() + 1;  // + 1: did this rank have a gradient
    b.flat = at::zeros({n}, params_[b.params.front()].options().requires_grad(false));
  }
  for (int64_t i = 0; i < (int64_t)params_.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[i]);
    hooks_.push_back({acc, acc->add_post_hook(std::make_unique<ReadyHook>([this, i] { on_ready(i); }))});
  }
}

GradReducer::~GradReducer() {
  for (auto& [acc, key] : hooks_) acc->del_post_hook(key);
}

void GradReducer::prepare(bool sync) {
  std::lock_guard<std::mutex> lock(mu_);
  sync_ = sync;
  if (!sync) return;
  next_ = 0;
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& b : buckets_) b.pending = (int64_t)b.params.size();
}

void GradReducer::on_ready(int64_t i) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!sync_ || ready_[i]) return;
  ready_[i] = true;
  --buckets_[bucket_of_[i]].pending;
  launch_ready();
}

void GradReducer::launch_ready() {
  while (next_ < buckets_.size() && buckets_[next_].pending == 0) launch(buckets_[next_++]);
}

void GradReducer::launch(Bucket& b) {
  torch::NoGradGuard ng;
  int64_t off = 0;
  for (auto i : b.params) {
    const auto& g = params_[i].grad();
    const int64_t n = params_[i].numel();
    if (g.defined()) b.flat.narrow(0, off, n).copy_(g.reshape({-1}));
    else b.flat.narrow(0, off, n).zero_();
    b.flat[off + n] = g.defined() ? 1.0 : 0.0;
    off += n + 1;
  }
  b.work = group_.allreduce_sum_async(b.flat);
}

void GradReducer::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& b : buckets_) b.pending = 0;  // no gradient this step: contributes zeros
    launch_ready();
    sync_ = false;
  }
  torch::NoGradGuard ng;
  const double inv = 1.0 / group_.world();
  for (auto& b : buckets_) {
    b.work.wait();
    int64_t off = 0;
    for (auto i : b.params) {
      auto& p = params_[i];
      const int64_t n = p.numel();
      if (b.flat[off + n].item<double>() > 0) {  // some rank had a gradient
        auto avg = b.flat.narrow(0, off, n).view(p.sizes()).mul(inv);
        if (p.grad().defined()) p.mutable_grad().copy_(avg);
        else p.mutable_grad() = avg.clone();
      }
      off += n + 1;
    }
  }
}

}  // namespace dynarch::dist

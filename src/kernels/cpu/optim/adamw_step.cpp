#include "kernels/cpu/optim/adamw_step.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "core/error.h"
#if DYNARCH_CUDA
#include "kernels/cuda/optim/adamw_cuda.h"
#endif

namespace dynarch {

void adamw_step(const std::vector<OptimTensor>& ts, const AdamWScalars& s, const at::Tensor& clip,
                MultiTensorCache* cache) {
  check_optim_tensors("adamw_step", ts, /*moments=*/true);
  if (ts.empty()) return;
  check_clip("adamw_step", clip, ts[0].param.device());
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda").
  if (cuda_optim_applies(ts, /*moments=*/true)) {
    std::shared_ptr<void> local;
    const cuda::AdamWArgs a{s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.bc1, s.bc2};
    cuda::adamw_step(cuda_param_tensors(ts), a, clip, cache ? cache->state : local);
    return;
  }
#endif
  adamw_step_reference(ts, s, clip);
}

void adamw_step_reference(const std::vector<OptimTensor>& ts, const AdamWScalars& s, const at::Tensor& clip) {
  check_optim_tensors("adamw_step_reference", ts, /*moments=*/true);
  if (ts.empty()) return;
  at::NoGradGuard ng;
  if (clip.defined()) {
    const auto c = clip.to(at::kCPU).contiguous();
    const double norm = c.data_ptr<double>()[0], coef = c.data_ptr<double>()[1];
    if (!std::isfinite(norm)) return;
    if (coef != 1.0)
      for (const auto& t : ts) t.grad.mul_(coef);
  }
  for (const auto& t : ts) {
    const auto& g = t.grad;
    const double plr = s.lr * t.lr_mult;
    t.exp_avg.mul_(s.beta1).add_(g, 1.0 - s.beta1);
    t.exp_avg_sq.mul_(s.beta2).addcmul_(g, g, 1.0 - s.beta2);
    if (t.decay && s.weight_decay > 0) t.param.mul_(1.0 - plr * s.weight_decay);
    auto denom = (t.exp_avg_sq.sqrt() / std::sqrt(s.bc2)).add_(s.eps);
    t.param.addcdiv_(t.exp_avg, denom, -plr / s.bc1);
  }
}

}  // namespace dynarch

#include "kernels/cpu/optim/grad_clip.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "core/error.h"
#if DYNARCH_CUDA
#include "kernels/cuda/optim/grad_clip_cuda.h"
#endif

namespace dynarch {

at::Tensor grad_clip_coef(const std::vector<OptimTensor>& ts, double max_norm, MultiTensorCache* cache) {
  check_optim_tensors("grad_clip_coef", ts, /*moments=*/false);
#if DYNARCH_CUDA
  if (cuda_optim_applies(ts, /*moments=*/false)) {  // the CUDA hook (docs/architecture.md, "kernels/cuda")
    std::shared_ptr<void> local;
    return cuda::grad_clip_coef(cuda_param_tensors(ts), max_norm, cache ? cache->state : local);
  }
#endif
  return grad_clip_coef_reference(ts, max_norm);
}

at::Tensor grad_clip_coef_reference(const std::vector<OptimTensor>& ts, double max_norm) {
  check_optim_tensors("grad_clip_coef_reference", ts, /*moments=*/false);
  at::NoGradGuard ng;
  // Summed on the gradients' device in list order, read once.
  at::Tensor sq;
  for (const auto& t : ts) {
    auto s = t.grad.to(at::kDouble).pow(2).sum();
    sq = sq.defined() ? sq + s : s;
  }
  const double norm = sq.defined() ? std::sqrt(sq.item<double>()) : 0.0;
  const double coef = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
  auto out = at::tensor({norm, coef}, at::kDouble);
  return ts.empty() ? out : out.to(ts[0].param.device());
}

void scale_grads(const std::vector<OptimTensor>& ts, const at::Tensor& clip, MultiTensorCache* cache) {
  check_optim_tensors("scale_grads", ts, /*moments=*/false);
  if (ts.empty()) return;
  check(clip.defined(), "scale_grads: clip is undefined");
  check_clip("scale_grads", clip, ts[0].param.device());
#if DYNARCH_CUDA
  if (cuda_optim_applies(ts, /*moments=*/false)) {  // the CUDA hook
    std::shared_ptr<void> local;
    cuda::scale_grads(cuda_param_tensors(ts), clip, cache ? cache->state : local);
    return;
  }
#endif
  scale_grads_reference(ts, clip);
}

void scale_grads_reference(const std::vector<OptimTensor>& ts, const at::Tensor& clip) {
  check_optim_tensors("scale_grads_reference", ts, /*moments=*/false);
  if (ts.empty()) return;
  check_clip("scale_grads_reference", clip, ts[0].param.device());
  at::NoGradGuard ng;
  const double coef = clip.to(at::kCPU).contiguous().data_ptr<double>()[1];
  if (coef != 1.0)
    for (const auto& t : ts) t.grad.mul_(coef);
}

}  // namespace dynarch

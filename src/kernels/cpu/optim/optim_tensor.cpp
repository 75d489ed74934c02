#include "kernels/cpu/optim/optim_tensor.h"

#include <c10/util/Exception.h>

#include "core/error.h"
#include "core/forward_context.h"

namespace dynarch {
namespace {

// Messages are built on failure only: the checks run every step over every tensor.
void check_like(const char* op, const OptimTensor& t, const char* what, const at::Tensor& x) {
  const std::string who = std::string(op) + ": " + what + " of '" + std::string(t.name) + "'";
  if (!x.defined()) fail(who + " is undefined");
  if (x.device() != t.param.device())
    fail(who + " is on " + x.device().str() + ", the parameter on " + t.param.device().str());
  if (x.scalar_type() != t.param.scalar_type())
    fail(who + " is " + c10::toString(x.scalar_type()) + ", the parameter " + c10::toString(t.param.scalar_type()));
  if (x.sizes() != t.param.sizes())
    fail(who + " has shape " + c10::str(x.sizes()) + ", the parameter " + c10::str(t.param.sizes()));
}

bool fused_tensor(const at::Tensor& x) {
  return x.is_cuda() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && x.is_contiguous();
}

}  // namespace

void check_optim_tensors(const char* op, const std::vector<OptimTensor>& ts, bool moments) {
  for (const auto& t : ts) {
    if (!t.param.defined()) fail(std::string(op) + ": parameter '" + std::string(t.name) + "' is undefined");
    if (t.param.device() != ts[0].param.device())
      fail(std::string(op) + ": parameter '" + std::string(t.name) + "' is on " + t.param.device().str() + ", '" +
           std::string(ts[0].name) + "' on " + ts[0].param.device().str() + " (one device per call)");
    check_like(op, t, "grad", t.grad);
    if (moments) check_like(op, t, "exp_avg", t.exp_avg), check_like(op, t, "exp_avg_sq", t.exp_avg_sq);
  }
}

bool cuda_optim_applies(const std::vector<OptimTensor>& ts, bool moments) {
  if (ts.empty() || forward_context().reference()) return false;
  for (const auto& t : ts) {
    if (!fused_tensor(t.param) || !fused_tensor(t.grad)) return false;
    if (moments && (!fused_tensor(t.exp_avg) || !fused_tensor(t.exp_avg_sq))) return false;
  }
  return true;
}

void check_clip(const char* op, const at::Tensor& clip, const at::Device& device) {
  if (!clip.defined()) return;
  if (clip.scalar_type() != at::kDouble || clip.numel() != 2 || clip.device() != device)
    fail(std::string(op) + ": clip must be the fp64 {norm, coefficient} pair of grad_clip_coef on " + device.str() +
         ", got " + c10::toString(clip.scalar_type()) + " " + c10::str(clip.sizes()) + " on " + clip.device().str());
}

#if DYNARCH_CUDA
std::vector<cuda::ParamTensors> cuda_param_tensors(const std::vector<OptimTensor>& ts) {
  std::vector<cuda::ParamTensors> out;
  out.reserve(ts.size());
  for (const auto& t : ts) out.push_back({t.name, t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.lr_mult, t.decay});
  return out;
}
#endif

}  // namespace dynarch

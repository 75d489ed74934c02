#include "kernels/cuda/optim/adamw_cuda.h"

#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDAGuard.h>

#include <iterator>

#include "kernels/cuda/binding.h"

namespace dynarch::cuda {

void adamw_step(const std::vector<ParamTensors>& ts, const AdamWArgs& a, const at::Tensor& clip,
                std::shared_ptr<void>& cache) {
  const char* op = "adamw_step";
  if (ts.empty()) return;
  check_param_tensors(op, ts, /*moments=*/true);
  const auto dev = ts[0].p.device();
  if (clip.defined()) check_clip(op, clip, dev);
  c10::cuda::CUDAGuard guard(dev);
  at::NoGradGuard no_grad;
  TableCache& tables = table_cache(cache);
  const double* clip_ptr = clip.defined() ? clip.data_ptr<double>() : nullptr;
  for (size_t slot = 0; slot < std::size(kOptimDtypes); ++slot) {
    auto host = table_of(ts, kOptimDtypes[slot], /*moments=*/true);
    if (host.metas.empty()) continue;
    const int64_t n = (int64_t)host.metas.size(), chunks = host.chunks;
    const TensorMeta* table = tables.upload(slot, std::move(host.metas), dev);
    if (kOptimDtypes[slot] == at::kFloat)
      check_launch(adamw_multi<float>(table, n, chunks, a, clip_ptr, stream()), op);
    else
      check_launch(adamw_multi<double>(table, n, chunks, a, clip_ptr, stream()), op);
  }
}

}  // namespace dynarch::cuda

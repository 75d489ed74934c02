#include "kernels/cuda/optim/grad_clip_cuda.h"

#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <iterator>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/optim/grad_clip_launch.h"

namespace dynarch::cuda {

at::Tensor grad_clip_coef(const std::vector<ParamTensors>& ts, double max_norm, std::shared_ptr<void>& cache) {
  const char* op = "grad_clip_coef";
  check(!ts.empty(), std::string(op) + ": no gradients");
  check_param_tensors(op, ts, /*moments=*/false);
  const auto dev = ts[0].p.device();
  c10::cuda::CUDAGuard guard(dev);
  at::NoGradGuard no_grad;
  TableCache& tables = table_cache(cache);
  HostTable host[std::size(kOptimDtypes)];
  int64_t total = 0;
  for (size_t slot = 0; slot < std::size(kOptimDtypes); ++slot) {
    host[slot] = table_of(ts, kOptimDtypes[slot], /*moments=*/false);
    total += grad_sq_partial_count(host[slot].chunks);
  }
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(dev);
  // Partials, then the finish's scratch (one allocation of the caching allocator: no sync).
  auto buf = at::empty({std::max<int64_t>(total, 1) + grad_clip_scratch(total)}, f64), out = at::empty({2}, f64);
  double* partials = buf.data_ptr<double>();
  double* scratch = partials + std::max<int64_t>(total, 1);
  // Groups' partials one after another: the final sum's order is fixed too.
  int64_t offset = 0;
  for (size_t slot = 0; slot < std::size(kOptimDtypes); ++slot) {
    if (host[slot].metas.empty()) continue;
    const int64_t n = (int64_t)host[slot].metas.size(), chunks = host[slot].chunks;
    const TensorMeta* table = tables.upload(slot, std::move(host[slot].metas), dev);
    double* part = partials + offset;
    if (kOptimDtypes[slot] == at::kFloat)
      check_launch(grad_sq_partials<float>(table, n, chunks, part, stream()), op);
    else
      check_launch(grad_sq_partials<double>(table, n, chunks, part, stream()), op);
    offset += grad_sq_partial_count(chunks);
  }
  check_launch(grad_clip_finish(partials, total, max_norm, scratch, out.data_ptr<double>(), stream()), op);
  return out;
}

void scale_grads(const std::vector<ParamTensors>& ts, const at::Tensor& clip, std::shared_ptr<void>& cache) {
  const char* op = "scale_grads";
  if (ts.empty()) return;
  check_param_tensors(op, ts, /*moments=*/false);
  const auto dev = ts[0].p.device();
  check_clip(op, clip, dev);
  c10::cuda::CUDAGuard guard(dev);
  at::NoGradGuard no_grad;
  TableCache& tables = table_cache(cache);
  for (size_t slot = 0; slot < std::size(kOptimDtypes); ++slot) {
    auto host = table_of(ts, kOptimDtypes[slot], /*moments=*/false);
    if (host.metas.empty()) continue;
    const int64_t n = (int64_t)host.metas.size(), chunks = host.chunks;
    const TensorMeta* table = tables.upload(slot, std::move(host.metas), dev);
    if (kOptimDtypes[slot] == at::kFloat)
      check_launch(grad_scale_multi<float>(table, n, chunks, clip.data_ptr<double>(), stream()), op);
    else
      check_launch(grad_scale_multi<double>(table, n, chunks, clip.data_ptr<double>(), stream()), op);
  }
}

}  // namespace dynarch::cuda

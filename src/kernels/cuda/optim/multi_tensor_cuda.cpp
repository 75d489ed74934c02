#include "kernels/cuda/optim/multi_tensor_cuda.h"

#include <cstring>

#include "kernels/cuda/binding.h"

namespace dynarch::cuda {

const TensorMeta* TableCache::upload(size_t slot, std::vector<TensorMeta>&& host, const at::Device& device) {
  if (slots_.size() <= slot) slots_.resize(slot + 1);
  Slot& s = slots_[slot];
  const size_t bytes = host.size() * sizeof(TensorMeta);
  const bool same = s.device.defined() && s.device.device() == device && s.host.size() == host.size() &&
                    std::memcmp(s.host.data(), host.data(), bytes) == 0;
  if (!same) {
    // Pinned: the copy is asynchronous and the caching host allocator keeps the
    // buffer until the stream has read it.
    auto staged = at::empty({(int64_t)bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    if (bytes) std::memcpy(staged.data_ptr(), host.data(), bytes);
    s.device = staged.to(at::TensorOptions().device(device), /*non_blocking=*/true);
    s.host = std::move(host);
  }
  return reinterpret_cast<const TensorMeta*>(s.device.data_ptr());
}

TableCache& table_cache(std::shared_ptr<void>& state) {
  if (!state) state = std::make_shared<TableCache>();
  return *static_cast<TableCache*>(state.get());
}

namespace {

void check_one(const char* op, const ParamTensors& t, const char* what, const at::Tensor& x, const at::Device& dev) {
  const auto who = [&] { return std::string(op) + ": " + what + " of '" + std::string(t.name) + "'"; };
  if (!x.defined()) fail(who() + " is undefined");
  if (x.device() != dev) fail(who() + " is on " + x.device().str() + ", expected " + dev.str());
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)
    fail(who() + " must be fp32 or fp64, got " + c10::toString(x.scalar_type()));
  if (x.scalar_type() != t.p.scalar_type())
    fail(who() + " is " + c10::toString(x.scalar_type()) + ", the parameter " + c10::toString(t.p.scalar_type()));
  if (x.numel() != t.p.numel()) fail(who() + " has " + std::to_string(x.numel()) + " elements, the parameter " +
                                     std::to_string(t.p.numel()));
  if (!x.is_contiguous()) fail(who() + " must be contiguous");
}

}  // namespace

void check_param_tensors(const char* op, const std::vector<ParamTensors>& ts, bool moments) {
  if (ts.empty()) return;
  if (!ts[0].p.defined() || !ts[0].p.is_cuda())
    fail(std::string(op) + ": parameter '" + std::string(ts[0].name) + "' must be a CUDA tensor");
  const auto dev = ts[0].p.device();
  for (const auto& t : ts) {
    check_one(op, t, "parameter", t.p, dev);
    check_one(op, t, "grad", t.g, dev);
    if (moments) check_one(op, t, "exp_avg", t.m, dev), check_one(op, t, "exp_avg_sq", t.v, dev);
  }
}

void check_clip(const char* op, const at::Tensor& clip, const at::Device& dev) {
  check_tensor(op, "clip", clip, dev, {at::kDouble});
  check_shape(op, "clip", clip, {2});
  check(clip.is_contiguous(), std::string(op) + ": clip must be contiguous");
}

HostTable table_of(const std::vector<ParamTensors>& ts, at::ScalarType dtype, bool moments) {
  HostTable out;
  for (const auto& t : ts) {
    if (t.p.scalar_type() != dtype) continue;
    TensorMeta e;
    e.g = t.g.data_ptr();
    e.numel = t.g.numel();
    if (moments) e.p = t.p.data_ptr(), e.m = t.m.data_ptr(), e.v = t.v.data_ptr();
    if (moments) e.lr_mult = t.lr_mult, e.decay = t.decay ? 1 : 0;
    out.metas.push_back(e);
  }
  out.chunks = assign_chunks(out.metas.data(), (int64_t)out.metas.size());
  return out;
}

}  // namespace dynarch::cuda

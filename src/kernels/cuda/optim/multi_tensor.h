// The per-tensor table of a multi-tensor launch (the optimizer kernels: one
// launch updates every parameter). Plain C++ (no CUDA, no torch): the bindings
// fill it, the kernels read it from device memory, the host-emulated tests
// build it on the host.
#pragma once
#include <cstdint>

namespace dynarch::cuda {

// Work unit of the multi-tensor kernels: a tensor is cut into chunks of this
// many elements (the last one shorter). A block updates a chunk (AdamW, grad
// scale); a warp sums the squares of one (grad norm). The partition depends on
// the sizes only, so the norm's summation order does not depend on the grid.
constexpr int64_t kChunk = 4096;

// One tensor. Pointers to the tensor's dtype (all four share it); unused ones
// null (the norm and scale tables carry g only). All fields 8 bytes: no padding,
// so two tables compare byte by byte.
struct TensorMeta {
  void* p = nullptr;   // parameter
  void* g = nullptr;   // gradient (read only, except by the grad-scale kernel)
  void* m = nullptr;   // exp_avg
  void* v = nullptr;   // exp_avg_sq
  int64_t numel = 0;
  int64_t chunk_begin = 0;  // index of the tensor's first chunk in the launch
  double lr_mult = 1.0;
  int64_t decay = 0;  // 1: decoupled weight decay applies
};
static_assert(sizeof(TensorMeta) == 64, "TensorMeta must have no padding");

// Sets chunk_begin of metas[0..n) in order; returns the launch's chunk count.
// Empty tensors get no chunk (the kernels' lookup never lands on one).
inline int64_t assign_chunks(TensorMeta* metas, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) {
    metas[i].chunk_begin = c;
    c += (metas[i].numel + kChunk - 1) / kChunk;
  }
  return c;
}

}  // namespace dynarch::cuda

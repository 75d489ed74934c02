// Fused AdamW over all parameters in one launch per dtype: a block per chunk of
// kChunk elements (multi_tensor.cuh), each element read once (p, g, m, v) and
// written once (p, m, v). The arithmetic is the reference's op by op
// (kernels/cpu/optim/adamw_step.cpp), in the tensors' type C with the scalars
// rounded to C as torch rounds a Python-scalar operand.
#include "kernels/cuda/optim/adamw_launch.h"
#include "kernels/cuda/optim/multi_tensor.cuh"

namespace dynarch::cuda {
namespace {

template <class C>
__global__ void adamw_kernel(const TensorMeta* __restrict__ table, int64_t n, int64_t chunks, AdamWArgs a,
                             const double* __restrict__ clip) {
  if (clip != nullptr && !is_finite(clip[0])) return;  // the caller stops the run; nothing moves
  const bool scaled = clip != nullptr && clip[1] != 1.0;
  const C s = scaled ? C(clip[1]) : C(1);
  const C b1 = C(a.beta1), b2 = C(a.beta2), c1 = C(1.0 - a.beta1), c2 = C(1.0 - a.beta2);
  const C root_bc2 = C(sqrt(a.bc2)), eps = C(a.eps);
  DYNARCH_CHUNK_LOOP(c, chunks) {
    const ChunkSpan span = chunk_span(table, n, c);
    const TensorMeta& t = table[span.k];
    const double plr = a.lr * t.lr_mult;
    const bool decay = t.decay != 0 && a.weight_decay > 0;
    const C keep = C(1.0 - plr * a.weight_decay), step = C(-plr / a.bc1);
    C* __restrict__ p = static_cast<C*>(t.p);
    const C* __restrict__ g = static_cast<const C*>(t.g);
    C* __restrict__ m = static_cast<C*>(t.m);
    C* __restrict__ v = static_cast<C*>(t.v);
    DYNARCH_CHUNK_ELEMS(i, span) {
      const C gi = scaled ? g[i] * s : g[i];
      const C mi = m[i] * b1 + c1 * gi;
      const C vi = v[i] * b2 + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      C pi = p[i];
      if (decay) pi = pi * keep;
      p[i] = pi + step * (mi / (sqrt(vi) / root_bc2 + eps));
    }
  }
}

}  // namespace

template <class C>
cudaError_t adamw_multi(const TensorMeta* table, int64_t n, int64_t chunks, AdamWArgs a, const double* clip,
                        cudaStream_t stream) {
  return launch_chunks(adamw_kernel<C>, chunks, stream, table, n, chunks, a, clip);
}

template cudaError_t adamw_multi<float>(const TensorMeta*, int64_t, int64_t, AdamWArgs, const double*, cudaStream_t);
template cudaError_t adamw_multi<double>(const TensorMeta*, int64_t, int64_t, AdamWArgs, const double*, cudaStream_t);

}  // namespace dynarch::cuda

// Mamba-2 SSD chunked scan forward on CUDA: the five kernels of
// ssd_scan_kernels.cuh (cum, C.B per chunk, chunk states, state passing,
// outputs), C.B, the chunk states and the outputs tiled where ssd_use_tiled
// (ssd_scan_tiled.cuh). The backward is ssd_scan_backward.cu.
#include "kernels/cuda/mamba/ssd_scan_kernels.cuh"

namespace dynarch::cuda {

template <class C>
cudaError_t ssd_forward_chunked(const C* x, const C* dt, const C* a, const C* Bm, const C* Cm, const C* init,
                                const int64_t* seq_start, C* y, C* final_state, C* scratch, SsdShape s,
                                cudaStream_t stream) {
  if (s.Q < 1) return cudaErrorInvalidValue;
  DYNARCH_CUDA_TRY(ssd_forward_states(x, dt, a, Bm, Cm, init, seq_start, final_state, scratch, s, stream));
  const C* cum = scratch;
  const C* cb = cum + s.B * s.H * s.L;
  const C* states = cb + s.B * s.L * s.Q;
  if (s.L > 0 && ssd_use_tiled(s))
    DYNARCH_CUDA_TRY(ssd_tiled_output(x, dt, Cm, cum, cb, states, seq_start, y, s, stream));
  else if (s.L > 0)
    DYNARCH_CUDA_TRY(
        launch(ssd_output_kernel<C>, s.B * s.L * s.H * s.P, stream, x, dt, Cm, cum, cb, states, seq_start, y, s));
  return cudaSuccess;
}

template cudaError_t ssd_forward_chunked<float>(const float*, const float*, const float*, const float*, const float*,
                                                const float*, const int64_t*, float*, float*, float*, SsdShape,
                                                cudaStream_t);
template cudaError_t ssd_forward_chunked<double>(const double*, const double*, const double*, const double*,
                                                 const double*, const double*, const int64_t*, double*, double*,
                                                 double*, SsdShape, cudaStream_t);

}  // namespace dynarch::cuda

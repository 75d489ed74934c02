// The Mamba-2 SSD scan (hnet.md §11.3) in tensor ops, on any device:
//   S_t = exp(dt_t a) S_{t-1} + dt_t x_t (x) B_t,   y_t = S_t C_t   (no D skip).
// ssd_sequential is the plain recurrence (the reference); ssd_chunked the
// chunked form that must equal it; ssd_chunk_scan the op entry that takes CUDA
// tensors to the CUDA kernel (kernels/cuda/mamba/ssd_scan*) and everything
// else to ssd_chunked. The fused CPU scan of mamba_core is ssd_scan.h.
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

struct SsdResult {
  at::Tensor y;      // (B, L, H, P), without the D skip
  at::Tensor state;  // (B, H, P, N) final state
};

// x (B,L,H,P), dt (B,L,H) post-softplus, a (H) negative, Bm/Cm (B,L,N),
// init (B,H,P,N) or undefined for zeros. Differentiable in every input.
// Packed rows: seq_start (L) or (B, L) int64 (kernels/cpu/mamba/seq_starts.h),
// undefined for none. The state is zero before each sequence's first
// position, as if reset there; init feeds the first sequence only; the final
// state is the last sequence's. No gradient crosses a sequence start.
SsdResult ssd_sequential(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a, const at::Tensor& Bm,
                         const at::Tensor& Cm, const at::Tensor& init = {}, const at::Tensor& seq_start = {});
SsdResult ssd_chunked(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a, const at::Tensor& Bm,
                      const at::Tensor& Cm, int64_t chunk, const at::Tensor& init = {},
                      const at::Tensor& seq_start = {});
// The op: the CUDA kernel for CUDA tensors in fast kernel mode, ssd_chunked otherwise.
SsdResult ssd_chunk_scan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a, const at::Tensor& Bm,
                         const at::Tensor& Cm, int64_t chunk, const at::Tensor& init = {},
                         const at::Tensor& seq_start = {});

}  // namespace dynarch

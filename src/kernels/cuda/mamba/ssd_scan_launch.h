// Raw CUDA launchers of the Mamba-2 SSD chunked scan, forward and backward
// (hnet.md §11.3); no torch here. S_t = exp(dt_t a_h) S_{t-1} + dt_t x_t (x) B_t,  y_t = S_t C_t
// (no D skip), computed chunk by chunk without a per-head L x L (or Q x Q)
// decay matrix in device memory. Contiguous arrays: x, y (B, L, H, P);
// dt (B, L, H) after softplus; a (H) negative; Bm, Cm (B, L, N);
// init (B, H, P, N) or null for zeros; final_state (B, H, P, N). C = float or double.
// Packed rows: seq_start (B, L) int64, the first position of each position's
// sequence (kernels/cpu/mamba/seq_starts.h), or null for one sequence per row
// (no extra work then). The state is zero before each sequence start (init
// feeds the first sequence only); in the chunks that is masks, as the CPU's
// ssd_chunked, never -inf in the log-decays.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dynarch::cuda {

// Which kernels run the GEMM-shaped steps (forward and backward): the tiled
// ones (ssd_scan_tiled*.cuh: shared memory, fp32 on tensor cores as 3xTF32),
// the naive one-thread-per-output ones (ssd_scan_kernels.cuh,
// ssd_scan_backward.cu: the reference), or (automatic) the tiled ones where
// ssd_tiled_fits says they pay. tiled_tf32: tiled with one TF32 pass per
// product, ~1e-3 relative in fp32 (to measure what the split costs; never automatic).
enum class SsdKernels : int { automatic, naive, tiled, tiled_tf32 };

struct SsdShape {
  int64_t B, L, H, P, N, Q;  // Q: chunk length
  int64_t nc;                // chunks: ceil(L / Q), set by make_ssd_shape
  SsdKernels kernels = SsdKernels::automatic;
};

inline SsdShape make_ssd_shape(int64_t B, int64_t L, int64_t H, int64_t P, int64_t N, int64_t Q) {
  return {B, L, H, P, N, Q, Q > 0 ? (L + Q - 1) / Q : 0};
}

// The tiled kernels take any shape (tiles are zero-padded), but pay only with
// whole 16-wide tensor-core fragments along P and N.
inline bool ssd_tiled_fits(const SsdShape& s) { return s.P % 16 == 0 && s.N % 16 == 0; }
inline bool ssd_use_tiled(const SsdShape& s) {
  return s.kernels == SsdKernels::tiled || s.kernels == SsdKernels::tiled_tf32 ||
         (s.kernels == SsdKernels::automatic && ssd_tiled_fits(s));
}
// The tiled kernels' fp32 products: 3xTF32 unless tiled_tf32.
constexpr bool ssd_tf32_split(const SsdShape& s) { return s.kernels != SsdKernels::tiled_tf32; }

// Scratch (elements of C), from the caller: cum (B, H, L) within-chunk prefix
// sums of dt a; cb (B, L, Q) the C_l . B_s products inside each chunk (shared
// by the heads); states (B, chunks, H, N, P).
inline int64_t ssd_scratch_elems(const SsdShape& s) {
  return s.B * s.H * s.L + s.B * s.L * s.Q + s.B * s.nc * s.H * s.N * s.P;
}

template <class C>
cudaError_t ssd_forward_chunked(const C* x, const C* dt, const C* a, const C* Bm, const C* Cm, const C* init,
                                const int64_t* seq_start, C* y, C* final_state, C* scratch, SsdShape s,
                                cudaStream_t stream);

// Scratch of the backward: the forward's (rerun: cum, cb, chunk-entry states),
// then the final state (B, H, P, N), the state gradients leaving each chunk
// (B, chunks, H, N, P), the C.B gradient dcb (B, L, Q), per (b, l, h) x . dS B
// and the log-decay gradient terms, per (b, chunk, h) <dS, S> at the chunk end
// and the partial sums of da.
inline int64_t ssd_backward_scratch_elems(const SsdShape& s) {
  return ssd_scratch_elems(s) + s.B * s.H * s.P * s.N + s.B * s.nc * s.H * s.N * s.P + s.B * s.L * s.Q +
         2 * s.B * s.L * s.H + 2 * s.B * s.nc * s.H;
}

// Gradients of <gy, y> + <g_final, final_state> of ssd_forward_chunked with
// respect to its inputs. gy (B, L, H, P) and g_final (B, H, P, N) may be null
// (zeros); so may init (as in the forward). Outputs dx (B, L, H, P), ddt
// (B, L, H), da (H), dBm, dCm (B, L, N), dinit (B, H, P, N): each may be null
// (not wanted); each one given is overwritten. No atomics: the sums over heads
// (dBm, dCm) run in a fixed order inside one thread, the sum over positions (da)
// goes through per-chunk partials summed by a last kernel. seq_start as in the
// forward: no gradient crosses a sequence start.
template <class C>
cudaError_t ssd_backward_chunked(const C* x, const C* dt, const C* a, const C* Bm, const C* Cm, const C* init,
                                 const int64_t* seq_start, const C* gy, const C* g_final, C* dx, C* ddt, C* da,
                                 C* dBm, C* dCm, C* dinit, C* scratch, SsdShape s, cudaStream_t stream);

}  // namespace dynarch::cuda

// The forward kernels of the Mamba-2 SSD chunked scan (hnet.md §11.3), shared
// by the forward launcher (ssd_scan.cu) and the backward (ssd_scan_backward.cu),
// which reruns steps 1-4 to rebuild cum and the chunk-entry states. Each is a
// simple one-thread-per-output kernel:
//   1. cum: within-chunk prefix sums of dt a                     (B, H, L)
//   2. cb:  C_l . B_s for s <= l in the same chunk                 (B, L, Q), heads share it
//   3. chunk states: sum_s exp(cum_end - cum_s) dt_s x_s (x) B_s   (B, c, H, N, P)
//   4. state passing over the chunks, in place: states[c] becomes the state
//      entering chunk c; the final state is written out
//   5. y_l = exp(cum_l) C_l . S_in + sum_{s<=l} cb[l, s] exp(cum_l - cum_s) dt_s x_s
// With sequence starts (packed rows; st null: none) the sums are masked, the
// cumsums are not: cb[l, s] = 0 for s before l's start; a chunk state sums the
// positions of its last position's sequence; the entering state reaches the
// positions of the sequence before the chunk (init's: the first) only.
// The decays exp(cum_l - cum_s) are recomputed where used, never stored. Every
// exponent is <= 0 (a < 0, dt >= 0), so nothing overflows. P is innermost in
// 3-5, so a warp reads 32 consecutive x / state values. Steps 2, 3 and 5 have
// tiled forms (ssd_scan_tiled.cuh, with the same masks), taken where
// ssd_use_tiled(s), starts or not; these stay the reference. Steps 1 and 4
// serve both.
#pragma once
#include "kernels/cuda/grid.cuh"
#include "kernels/cuda/mamba/ssd_scan_launch.h"
#include "kernels/cuda/mamba/ssd_scan_tiled.cuh"

namespace dynarch::cuda {
namespace {

// Last position of chunk c.
__device__ __forceinline__ int64_t ssd_chunk_end(const SsdShape& s, int64_t c) {
  return (c + 1) * s.Q < s.L ? (c + 1) * s.Q - 1 : s.L - 1;
}

// First position of the sequence of (b, l): 0 without starts (one sequence a row).
__device__ __forceinline__ int64_t ssd_seq_start(const int64_t* st, const SsdShape& s, int64_t b, int64_t l) {
  return st ? st[b * s.L + l] : 0;
}

// Whether the state entering l's chunk (init for chunk 0) reaches position l:
// l is in the sequence of the position before the chunk (chunk 0: the first).
__device__ __forceinline__ bool ssd_takes_in(const int64_t* st, const SsdShape& s, int64_t b, int64_t l) {
  const int64_t first = (l / s.Q) * s.Q;
  return ssd_seq_start(st, s, b, l) < (first > 0 ? first : 1);
}

template <class C>
__global__ void ssd_cum_kernel(const C* __restrict__ dt, const C* __restrict__ a, C* __restrict__ cum, SsdShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.H * s.nc) {
    const int64_t c = i % s.nc, bh = i / s.nc, h = bh % s.H, b = bh / s.H;
    const int64_t l1 = ssd_chunk_end(s, c) + 1;
    C acc = 0;
    for (int64_t l = c * s.Q; l < l1; ++l) {
      acc += dt[(b * s.L + l) * s.H + h] * a[h];
      cum[bh * s.L + l] = acc;
    }
  }
}

template <class C>
__global__ void ssd_cb_kernel(const C* __restrict__ Bm, const C* __restrict__ Cm, const int64_t* __restrict__ st,
                              C* __restrict__ cb, SsdShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.L * s.Q) {
    const int64_t j = i % s.Q, bl = i / s.Q, l = bl % s.L, b = bl / s.L;
    const int64_t src = (l / s.Q) * s.Q + j;
    C acc = 0;
    if (src <= l && src >= ssd_seq_start(st, s, b, l))
      for (int64_t n = 0; n < s.N; ++n) acc += Cm[bl * s.N + n] * Bm[(b * s.L + src) * s.N + n];
    cb[i] = acc;
  }
}

template <class C>
__global__ void ssd_chunk_state_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Bm,
                                       const C* __restrict__ cum, const int64_t* __restrict__ st,
                                       C* __restrict__ states, SsdShape s) {
  const int64_t nc = s.nc;
  DYNARCH_GRID_LOOP(i, s.B * nc * s.H * s.N * s.P) {
    const int64_t p = i % s.P, n = (i / s.P) % s.N, h = (i / (s.P * s.N)) % s.H, bc = i / (s.P * s.N * s.H);
    const int64_t c = bc % nc, b = bc / nc;
    const int64_t l1 = ssd_chunk_end(s, c) + 1, from = ssd_seq_start(st, s, b, l1 - 1);
    const int64_t l0 = from > c * s.Q ? from : c * s.Q;  // the last position's sequence only
    const C* cm = cum + (b * s.H + h) * s.L;
    const C end = cm[l1 - 1];
    C acc = 0;
    for (int64_t l = l0; l < l1; ++l) {
      const int64_t r = b * s.L + l;
      acc += exp(end - cm[l]) * dt[r * s.H + h] * x[(r * s.H + h) * s.P + p] * Bm[r * s.N + n];
    }
    states[i] = acc;
  }
}

template <class C>
__global__ void ssd_state_pass_kernel(const C* __restrict__ init, const C* __restrict__ cum,
                                      const int64_t* __restrict__ st, C* __restrict__ states,
                                      C* __restrict__ final_state, SsdShape s) {
  const int64_t nc = s.nc;
  DYNARCH_GRID_LOOP(i, s.B * s.H * s.N * s.P) {
    const int64_t p = i % s.P, n = (i / s.P) % s.N, bh = i / (s.P * s.N), h = bh % s.H, b = bh / s.H;
    const int64_t pn = ((b * s.H + h) * s.P + p) * s.N + n;  // (B, H, P, N) index
    C prev = init ? init[pn] : C(0);
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t e = ((b * nc + c) * s.H + h) * s.N * s.P + n * s.P + p;
      const C own = states[e];
      states[e] = prev;
      const int64_t end = ssd_chunk_end(s, c);
      prev = (ssd_takes_in(st, s, b, end) ? exp(cum[bh * s.L + end]) * prev : C(0)) + own;
    }
    final_state[pn] = prev;
  }
}

// y[b, l, h, p] from the chunk-entry states (step 5), for one element.
template <class C>
__device__ __forceinline__ C ssd_output_at(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Cm,
                                           const C* __restrict__ cum, const C* __restrict__ cb,
                                           const C* __restrict__ states, const int64_t* __restrict__ seq_start,
                                           const SsdShape& s, int64_t b, int64_t l, int64_t h, int64_t p) {
  const int64_t c = l / s.Q, l0 = c * s.Q, bl = b * s.L + l;
  const C* cm = cum + (b * s.H + h) * s.L;
  const C cl = cm[l];
  C acc = 0;
  if (ssd_takes_in(seq_start, s, b, l)) {  // carried-in state: exp(cum_l) C_l . S_in[:, p]
    const C* st = states + ((b * s.nc + c) * s.H + h) * s.N * s.P + p;
    C inter = 0;
    for (int64_t n = 0; n < s.N; ++n) inter += Cm[bl * s.N + n] * st[n * s.P];
    acc = exp(cl) * inter;
  }
  // Inside the chunk, from l's sequence start on.
  const C* cbl = cb + bl * s.Q;
  const int64_t from = ssd_seq_start(seq_start, s, b, l);
  for (int64_t src = from > l0 ? from : l0; src <= l; ++src) {
    const int64_t r = b * s.L + src;
    acc += cbl[src - l0] * exp(cl - cm[src]) * dt[r * s.H + h] * x[(r * s.H + h) * s.P + p];
  }
  return acc;
}

template <class C>
__global__ void ssd_output_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Cm,
                                  const C* __restrict__ cum, const C* __restrict__ cb, const C* __restrict__ states,
                                  const int64_t* __restrict__ st, C* __restrict__ y, SsdShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.L * s.H * s.P) {
    const int64_t p = i % s.P, h = (i / s.P) % s.H, bl = i / (s.P * s.H), l = bl % s.L, b = bl / s.L;
    y[i] = ssd_output_at(x, dt, Cm, cum, cb, states, st, s, b, l, h, p);
  }
}

// Steps 1-4 into scratch (layout of ssd_scratch_elems): cum, cb, and the
// chunk-entry states; the final state goes to final_state.
template <class C>
cudaError_t ssd_forward_states(const C* x, const C* dt, const C* a, const C* Bm, const C* Cm, const C* init,
                               const int64_t* st, C* final_state, C* scratch, const SsdShape& s,
                               cudaStream_t stream) {
  C* cum = scratch;
  C* cb = cum + s.B * s.H * s.L;
  C* states = cb + s.B * s.L * s.Q;
  const int64_t nc = s.nc;
  if (s.L > 0) {
    DYNARCH_CUDA_TRY(launch(ssd_cum_kernel<C>, s.B * s.H * nc, stream, dt, a, cum, s));
    if (ssd_use_tiled(s)) {
      DYNARCH_CUDA_TRY(ssd_tiled_cb_states(x, dt, Bm, Cm, cum, st, cb, states, s, stream));
    } else {
      DYNARCH_CUDA_TRY(launch(ssd_cb_kernel<C>, s.B * s.L * s.Q, stream, Bm, Cm, st, cb, s));
      DYNARCH_CUDA_TRY(
          launch(ssd_chunk_state_kernel<C>, s.B * nc * s.H * s.N * s.P, stream, x, dt, Bm, cum, st, states, s));
    }
  }
  return launch(ssd_state_pass_kernel<C>, s.B * s.H * s.N * s.P, stream, init, cum, st, states, final_state, s);
}

}  // namespace
}  // namespace dynarch::cuda

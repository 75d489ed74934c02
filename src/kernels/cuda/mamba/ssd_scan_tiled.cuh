// Tiled forms of the GEMM-shaped steps of the SSD chunked scan (hnet.md
// §11.3; the naive one-thread-per-output kernels are ssd_scan_kernels.cuh, the
// reference they are tested against). Each block computes one output tile
// through shared memory with tensor cores for fp32 (tile_gemm.cuh,
// tile_mma.cuh: 3xTF32, ~fp32 accuracy) and plain loops for fp64:
//   cb:     cb[l, j] = C_l . B_j, j <= l           per (b, chunk, l tile, j tile)   K = N
//   states: S = B^T (w x), w_l = exp(cum_end - cum_l) dt_l
//                                                   per (b, chunk, head, n tile, p tile)  K = chunk
//   output: y = (exp(cum) C) S_in + (cb o decay o dt) x
//                                                   per (b, chunk, head, l tile, p tile)  K = N, then
//                                                   the chunk's positions up to the tile's last row
// The decays exp(cum_l - cum_s) are formed while staging, never stored. Same
// layouts and scratch as the naive kernels; no sequence starts yet (the
// dispatcher keeps the naive kernels for those).
#pragma once
#include "kernels/cuda/mamba/ssd_scan_launch.h"
#include "kernels/cuda/tile_gemm.cuh"

namespace dynarch::cuda {
namespace {

// A chunk as the tiled kernels see it: first position, length (the last one ragged).
struct SsdChunk {
  int64_t l0, len;
};
__device__ __forceinline__ SsdChunk ssd_chunk(const SsdShape& s, int64_t c) {
  const int64_t l0 = c * s.Q;
  return {l0, s.L - l0 < s.Q ? s.L - l0 : s.Q};
}

// cb (B, L, Q): block (b, c, l tile, j tile); rows past the data are not
// written, entries above the diagonal are zeros (as the naive kernel).
template <class C>
__global__ void __launch_bounds__(kTileThreads, 2)
    ssd_cb_tiled_kernel(const C* __restrict__ Bm, const C* __restrict__ Cm, C* __restrict__ cb, SsdShape s) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tj = ceil_div(s.Q, G::BN), tl = ceil_div(s.Q, G::BM);
  const int64_t j0 = (blk % tj) * G::BN, r0 = (blk / tj % tl) * G::BM;
  blk /= tj * tl;
  const int64_t c = blk % s.nc, b = blk / s.nc;
  const SsdChunk ch = ssd_chunk(s, c);
  if (r0 >= ch.len) return;  // uniform over the block
  const C* crow = Cm + (b * s.L + ch.l0 + r0) * s.N;
  const C* bcol = Bm + (b * s.L + ch.l0 + j0) * s.N;
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  TileAcc<C> acc;
  tile_zero<C>(acc);
  if (j0 <= r0 + G::BM - 1)  // the tile reaches the diagonal or below it
    tile_accumulate<Major::row, Major::col, C>(
        acc, smem, ceil_div(s.N, G::KT),
        [&](int64_t kt, int r, int k) {
          const int64_t n = kt * G::KT + k;
          return r0 + r < ch.len && n < s.N ? crow[r * s.N + n] : C(0);
        },
        [&](int64_t kt, int k, int q) {
          const int64_t n = kt * G::KT + k;
          return j0 + q < ch.len && n < s.N ? bcol[q * s.N + n] : C(0);
        }, ssd_tf32_split(s));
  tile_finish<C>(acc, smem, [&](int r, int q, C v) {
    if (r0 + r < ch.len && j0 + q < s.Q) cb[(b * s.L + ch.l0 + r0 + r) * s.Q + j0 + q] = j0 + q <= r0 + r ? v : C(0);
  });
}

// states (B, chunks, H, N, P), block (b, c, h, n tile, p tile). Forward:
// S[n, p] = sum_l B_l[n] w_l x_l[p], w_l = exp(cum_end - cum_l) dt_l (rows = Bm,
// v = x). Backward's dchunk (grad): sum_l C_l[n] exp(cum_l) gy_l[p] (rows = Cm,
// v = gy; zeros for a null gy).
template <class C>
__global__ void __launch_bounds__(kTileThreads, 2)
    ssd_states_tiled_kernel(const C* __restrict__ v, const C* __restrict__ dt, const C* __restrict__ rows,
                            const C* __restrict__ cum, C* __restrict__ states, SsdShape s, bool grad) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tp = ceil_div(s.P, G::BN), tn = ceil_div(s.N, G::BM);
  const int64_t p0 = (blk % tp) * G::BN, n0 = (blk / tp % tn) * G::BM;
  blk /= tp * tn;
  const int64_t h = blk % s.H, c = blk / s.H % s.nc, b = blk / (s.H * s.nc);
  const SsdChunk ch = ssd_chunk(s, c);
  const C* cm = cum + (b * s.H + h) * s.L + ch.l0;
  const C end = cm[ch.len - 1];
  const int64_t row = b * s.L + ch.l0;  // first (b, l) row of the chunk
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  TileAcc<C> acc;
  tile_zero<C>(acc);
  if (v)
    tile_accumulate<Major::col, Major::row, C>(
        acc, smem, ceil_div(ch.len, G::KT),
        [&](int64_t kt, int r, int k) {  // A (n, l) = rows_l[n]
          const int64_t l = kt * G::KT + k;
          return l < ch.len && n0 + r < s.N ? rows[(row + l) * s.N + n0 + r] : C(0);
        },
        [&](int64_t kt, int k, int q) {  // B (l, p) = w_l v_l[p]
          const int64_t l = kt * G::KT + k;
          if (l >= ch.len || p0 + q >= s.P) return C(0);
          const int64_t lh = (row + l) * s.H + h;
          return (grad ? exp(cm[l]) : exp(end - cm[l]) * dt[lh]) * v[lh * s.P + p0 + q];
        }, ssd_tf32_split(s));
  C* out = states + ((b * s.nc + c) * s.H + h) * s.N * s.P;
  tile_finish<C>(acc, smem, [&](int r, int q, C val) {
    if (n0 + r < s.N && p0 + q < s.P) out[(n0 + r) * s.P + p0 + q] = val;
  });
}

// acc += the y tile of rows r0.. (chunk-local) and columns p0.. of (b, c, h):
// first the carried-in state, (exp(cum_l) C_l) . S_in over n; then the chunk's
// positions s <= l, (cb[l, s] exp(cum_l - cum_s) dt_s) x_s, up to the tile's last row.
template <class C>
__device__ __forceinline__ void ssd_y_tile(TileAcc<C>& acc, C* smem, const C* __restrict__ x, const C* __restrict__ dt,
                                           const C* __restrict__ Cm, const C* __restrict__ cum,
                                           const C* __restrict__ cb, const C* __restrict__ states, const SsdShape& s,
                                           int64_t b, int64_t c, int64_t h, int64_t r0, int64_t p0) {
  using G = TileGeom<C>;
  const SsdChunk ch = ssd_chunk(s, c);
  const C* cm = cum + (b * s.H + h) * s.L + ch.l0;
  const int64_t row = b * s.L + ch.l0;
  const C* st = states + ((b * s.nc + c) * s.H + h) * s.N * s.P;
  tile_accumulate<Major::row, Major::row, C>(
      acc, smem, ceil_div(s.N, G::KT),
      [&](int64_t kt, int r, int k) {  // A (l, n) = exp(cum_l) C_l[n]
        const int64_t l = r0 + r, n = kt * G::KT + k;
        return l < ch.len && n < s.N ? exp(cm[l]) * Cm[(row + l) * s.N + n] : C(0);
      },
      [&](int64_t kt, int k, int q) {  // B (n, p) = S_in[n, p]
        const int64_t n = kt * G::KT + k;
        return n < s.N && p0 + q < s.P ? st[n * s.P + p0 + q] : C(0);
      }, ssd_tf32_split(s));
  const int64_t src_end = ch.len < r0 + G::BM ? ch.len : r0 + G::BM;  // positions s < src_end
  tile_accumulate<Major::row, Major::row, C>(
      acc, smem, ceil_div(src_end, G::KT),
      [&](int64_t kt, int r, int k) {  // A (l, s) = cb[l, s] exp(cum_l - cum_s) dt_s, s <= l
        const int64_t l = r0 + r, src = kt * G::KT + k;
        if (l >= ch.len || src > l) return C(0);
        return cb[(row + l) * s.Q + src] * exp(cm[l] - cm[src]) * dt[(row + src) * s.H + h];
      },
      [&](int64_t kt, int k, int q) {  // B (s, p) = x_s[p]
        const int64_t src = kt * G::KT + k;
        return src < src_end && p0 + q < s.P ? x[((row + src) * s.H + h) * s.P + p0 + q] : C(0);
      }, ssd_tf32_split(s));
}

// y (B, L, H, P), block (b, c, h, l tile, p tile).
template <class C>
__global__ void __launch_bounds__(kTileThreads, 2)
    ssd_output_tiled_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Cm,
                            const C* __restrict__ cum, const C* __restrict__ cb, const C* __restrict__ states,
                            C* __restrict__ y, SsdShape s) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tp = ceil_div(s.P, G::BN), tl = ceil_div(s.Q, G::BM);
  const int64_t p0 = (blk % tp) * G::BN, r0 = (blk / tp % tl) * G::BM;
  blk /= tp * tl;
  const int64_t h = blk % s.H, c = blk / s.H % s.nc, b = blk / (s.H * s.nc);
  const SsdChunk ch = ssd_chunk(s, c);
  if (r0 >= ch.len) return;  // uniform over the block
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  TileAcc<C> acc;
  tile_zero<C>(acc);
  ssd_y_tile(acc, smem, x, dt, Cm, cum, cb, states, s, b, c, h, r0, p0);
  C* yb = y + ((b * s.L + ch.l0 + r0) * s.H + h) * s.P + p0;
  tile_finish<C>(acc, smem, [&](int r, int q, C v) {
    if (r0 + r < ch.len && p0 + q < s.P) yb[r * s.H * s.P + q] = v;
  });
}

// Forward steps 2 and 3 (cb, chunk states) tiled; cum must be ready.
template <class C>
cudaError_t ssd_tiled_cb_states(const C* x, const C* dt, const C* Bm, const C* Cm, const C* cum, C* cb, C* states,
                                const SsdShape& s, cudaStream_t stream) {
  using G = TileGeom<C>;
  const int64_t bc = s.B * s.nc;
  DYNARCH_CUDA_TRY(launch_blocks<kTileThreads>(ssd_cb_tiled_kernel<C>,
                                               bc * ceil_div(s.Q, G::BM) * ceil_div(s.Q, G::BN), stream, Bm, Cm, cb, s));
  return launch_blocks<kTileThreads>(ssd_states_tiled_kernel<C>,
                                     bc * s.H * ceil_div(s.N, G::BM) * ceil_div(s.P, G::BN), stream, x, dt, Bm, cum,
                                     states, s, false);
}

// Forward step 5 (outputs) tiled.
template <class C>
cudaError_t ssd_tiled_output(const C* x, const C* dt, const C* Cm, const C* cum, const C* cb, const C* states, C* y,
                             const SsdShape& s, cudaStream_t stream) {
  using G = TileGeom<C>;
  return launch_blocks<kTileThreads>(ssd_output_tiled_kernel<C>,
                                     s.B * s.nc * s.H * ceil_div(s.Q, G::BM) * ceil_div(s.P, G::BN), stream, x, dt,
                                     Cm, cum, cb, states, y, s);
}

}  // namespace
}  // namespace dynarch::cuda

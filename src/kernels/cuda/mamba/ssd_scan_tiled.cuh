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
// layouts and scratch as the naive kernels. Sequence starts (packed rows, st
// (B, L); null: none, the same loads and loops as without them) take the naive
// kernels' masks: cb is zero for j before l's start (in the epilogue); a chunk
// state sums only its last position's sequence and the carried-in term
// reaches only the sequence before the chunk (both as K ranges or row masks
// in the loaders, SsdChunk's from / reach). The in-chunk output term needs no
// mask of its own: cb's zeros are it (the K loop starts at the tile's first
// row's start). cum and the state passing are the naive kernels', shared by both.
#pragma once
#include "kernels/cuda/mamba/ssd_scan_launch.h"
#include "kernels/cuda/tile_gemm.cuh"

namespace dynarch::cuda {
namespace {

// A chunk of row b as the tiled kernels see it: first position l0, length len
// (the last one ragged) and, chunk-local, with sequence starts st: `from`, the
// first position of the last position's sequence (those from it on make the
// chunk's final state), and `reach`, how many positions (a prefix: starts do
// not decrease) the state entering the chunk reaches, those of the sequence
// before the chunk (chunk 0: the first sequence, init's). Without: 0 and len.
struct SsdChunk {
  int64_t l0, len, from, reach;
};
__device__ __forceinline__ SsdChunk ssd_chunk(const SsdShape& s, int64_t c, const int64_t* st, int64_t b) {
  const int64_t l0 = c * s.Q, len = s.L - l0 < s.Q ? s.L - l0 : s.Q;
  SsdChunk ch{l0, len, 0, len};
  if (st) {
    const int64_t* sr = st + b * s.L + l0;
    ch.from = sr[len - 1] > l0 ? sr[len - 1] - l0 : 0;
    const int64_t before = l0 > 0 ? l0 : 1;  // positions whose start is below it take the entering state
    int64_t lo = 0, hi = len;                // the same binary search in every thread of the block
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (sr[mid] < before)
        lo = mid + 1;
      else
        hi = mid;
    }
    ch.reach = lo;
  }
  return ch;
}

// Chunk-local start of the sequence of chunk position l (<= 0 when it began before the chunk; 0 without starts).
__device__ __forceinline__ int64_t ssd_local_start(const int64_t* st, const SsdShape& s, int64_t b,
                                                   const SsdChunk& ch, int64_t l) {
  return st ? st[b * s.L + ch.l0 + l] - ch.l0 : 0;
}

// cb (B, L, Q): block (b, c, l tile, j tile); rows past the data are not
// written, entries above the diagonal and before l's sequence start are zeros
// (as the naive kernel).
template <class C>
__global__ void __launch_bounds__(kTileThreads, 2)
    ssd_cb_tiled_kernel(const C* __restrict__ Bm, const C* __restrict__ Cm, const int64_t* __restrict__ st,
                        C* __restrict__ cb, SsdShape s) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tj = ceil_div(s.Q, G::BN), tl = ceil_div(s.Q, G::BM);
  const int64_t j0 = (blk % tj) * G::BN, r0 = (blk / tj % tl) * G::BM;
  blk /= tj * tl;
  const int64_t c = blk % s.nc, b = blk / s.nc;
  const SsdChunk ch = ssd_chunk(s, c, st, b);
  if (r0 >= ch.len) return;  // uniform over the block
  const int64_t first = ssd_local_start(st, s, b, ch, r0);  // the tile's rows start here or later
  const C* crow = Cm + (b * s.L + ch.l0 + r0) * s.N;
  const C* bcol = Bm + (b * s.L + ch.l0 + j0) * s.N;
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  TileAcc<C> acc;
  tile_zero<C>(acc);
  if (j0 <= r0 + G::BM - 1 && j0 + G::BN > first)  // the tile reaches the diagonal and the first row's start
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
    const int64_t l = r0 + r, j = j0 + q;
    if (l < ch.len && j < s.Q)
      cb[(b * s.L + ch.l0 + l) * s.Q + j] = j <= l && j >= ssd_local_start(st, s, b, ch, l) ? v : C(0);
  });
}

// states (B, chunks, H, N, P), block (b, c, h, n tile, p tile). Forward:
// S[n, p] = sum_l B_l[n] w_l x_l[p], w_l = exp(cum_end - cum_l) dt_l (rows = Bm,
// v = x), over the last position's sequence (l >= from). Backward's dchunk
// (grad): sum_l C_l[n] exp(cum_l) gy_l[p] (rows = Cm, v = gy; zeros for a null
// gy), over the positions the entering state reaches (l < reach).
template <class C>
__global__ void __launch_bounds__(kTileThreads, 2)
    ssd_states_tiled_kernel(const C* __restrict__ v, const C* __restrict__ dt, const C* __restrict__ rows,
                            const C* __restrict__ cum, const int64_t* __restrict__ st, C* __restrict__ states,
                            SsdShape s, bool grad) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tp = ceil_div(s.P, G::BN), tn = ceil_div(s.N, G::BM);
  const int64_t p0 = (blk % tp) * G::BN, n0 = (blk / tp % tn) * G::BM;
  blk /= tp * tn;
  const int64_t h = blk % s.H, c = blk / s.H % s.nc, b = blk / (s.H * s.nc);
  const SsdChunk ch = ssd_chunk(s, c, st, b);
  const C* cm = cum + (b * s.H + h) * s.L + ch.l0;
  const C end = cm[ch.len - 1];
  const int64_t row = b * s.L + ch.l0;  // first (b, l) row of the chunk
  const int64_t k0 = grad ? 0 : ch.from, k1 = grad ? ch.reach : ch.len;  // the positions summed: [k0, k1)
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  TileAcc<C> acc;
  tile_zero<C>(acc);
  if (v)
    tile_accumulate<Major::col, Major::row, C>(
        acc, smem, ceil_div(k1 - k0, G::KT),
        [&](int64_t kt, int r, int k) {  // A (n, l) = rows_l[n]
          const int64_t l = k0 + kt * G::KT + k;
          return l < k1 && n0 + r < s.N ? rows[(row + l) * s.N + n0 + r] : C(0);
        },
        [&](int64_t kt, int k, int q) {  // B (l, p) = w_l v_l[p]
          const int64_t l = k0 + kt * G::KT + k;
          if (l >= k1 || p0 + q >= s.P) return C(0);
          const int64_t lh = (row + l) * s.H + h;
          return (grad ? exp(cm[l]) : exp(end - cm[l]) * dt[lh]) * v[lh * s.P + p0 + q];
        }, ssd_tf32_split(s));
  C* out = states + ((b * s.nc + c) * s.H + h) * s.N * s.P;
  tile_finish<C>(acc, smem, [&](int r, int q, C val) {
    if (n0 + r < s.N && p0 + q < s.P) out[(n0 + r) * s.P + p0 + q] = val;
  });
}

// acc += the y tile of rows r0.. (chunk-local) and columns p0.. of (b, c, h):
// first the carried-in state, (exp(cum_l) C_l) . S_in over n, for the rows it
// reaches; then the chunk's positions s <= l, (cb[l, s] exp(cum_l - cum_s)
// dt_s) x_s, from the first row's sequence start (cb is zero before each row's)
// up to the tile's last row.
template <class C>
__device__ __forceinline__ void ssd_y_tile(TileAcc<C>& acc, C* smem, const C* __restrict__ x, const C* __restrict__ dt,
                                           const C* __restrict__ Cm, const C* __restrict__ cum,
                                           const C* __restrict__ cb, const C* __restrict__ states,
                                           const int64_t* __restrict__ seq_start, const SsdShape& s, const SsdChunk& ch,
                                           int64_t b, int64_t c, int64_t h, int64_t r0, int64_t p0) {
  using G = TileGeom<C>;
  const C* cm = cum + (b * s.H + h) * s.L + ch.l0;
  const int64_t row = b * s.L + ch.l0;
  const C* st = states + ((b * s.nc + c) * s.H + h) * s.N * s.P;
  if (r0 < ch.reach)  // uniform over the block
    tile_accumulate<Major::row, Major::row, C>(
        acc, smem, ceil_div(s.N, G::KT),
        [&](int64_t kt, int r, int k) {  // A (l, n) = exp(cum_l) C_l[n], l < reach
          const int64_t l = r0 + r, n = kt * G::KT + k;
          return l < ch.reach && n < s.N ? exp(cm[l]) * Cm[(row + l) * s.N + n] : C(0);
        },
        [&](int64_t kt, int k, int q) {  // B (n, p) = S_in[n, p]
          const int64_t n = kt * G::KT + k;
          return n < s.N && p0 + q < s.P ? st[n * s.P + p0 + q] : C(0);
        }, ssd_tf32_split(s));
  const int64_t src_end = ch.len < r0 + G::BM ? ch.len : r0 + G::BM;  // positions s < src_end
  const int64_t first = ssd_local_start(seq_start, s, b, ch, r0);
  const int64_t src0 = first > 0 ? first : 0;  // and s >= src0
  tile_accumulate<Major::row, Major::row, C>(
      acc, smem, ceil_div(src_end - src0, G::KT),
      [&](int64_t kt, int r, int k) {  // A (l, s) = cb[l, s] exp(cum_l - cum_s) dt_s, s <= l
        const int64_t l = r0 + r, src = src0 + kt * G::KT + k;
        if (l >= ch.len || src > l) return C(0);
        return cb[(row + l) * s.Q + src] * exp(cm[l] - cm[src]) * dt[(row + src) * s.H + h];
      },
      [&](int64_t kt, int k, int q) {  // B (s, p) = x_s[p]
        const int64_t src = src0 + kt * G::KT + k;
        return src < src_end && p0 + q < s.P ? x[((row + src) * s.H + h) * s.P + p0 + q] : C(0);
      }, ssd_tf32_split(s));
}

// y (B, L, H, P), block (b, c, h, l tile, p tile).
template <class C>
__global__ void __launch_bounds__(kTileThreads, 2)
    ssd_output_tiled_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Cm,
                            const C* __restrict__ cum, const C* __restrict__ cb, const C* __restrict__ states,
                            const int64_t* __restrict__ st, C* __restrict__ y, SsdShape s) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tp = ceil_div(s.P, G::BN), tl = ceil_div(s.Q, G::BM);
  const int64_t p0 = (blk % tp) * G::BN, r0 = (blk / tp % tl) * G::BM;
  blk /= tp * tl;
  const int64_t h = blk % s.H, c = blk / s.H % s.nc, b = blk / (s.H * s.nc);
  const SsdChunk ch = ssd_chunk(s, c, st, b);
  if (r0 >= ch.len) return;  // uniform over the block
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  TileAcc<C> acc;
  tile_zero<C>(acc);
  ssd_y_tile(acc, smem, x, dt, Cm, cum, cb, states, st, s, ch, b, c, h, r0, p0);
  C* yb = y + ((b * s.L + ch.l0 + r0) * s.H + h) * s.P + p0;
  tile_finish<C>(acc, smem, [&](int r, int q, C v) {
    if (r0 + r < ch.len && p0 + q < s.P) yb[r * s.H * s.P + q] = v;
  });
}

// Forward steps 2 and 3 (cb, chunk states) tiled; cum must be ready. st: sequence starts or null.
template <class C>
cudaError_t ssd_tiled_cb_states(const C* x, const C* dt, const C* Bm, const C* Cm, const C* cum, const int64_t* st,
                                C* cb, C* states, const SsdShape& s, cudaStream_t stream) {
  using G = TileGeom<C>;
  const int64_t bc = s.B * s.nc;
  DYNARCH_CUDA_TRY(launch_blocks<kTileThreads>(ssd_cb_tiled_kernel<C>, bc * ceil_div(s.Q, G::BM) * ceil_div(s.Q, G::BN),
                                               stream, Bm, Cm, st, cb, s));
  return launch_blocks<kTileThreads>(ssd_states_tiled_kernel<C>,
                                     bc * s.H * ceil_div(s.N, G::BM) * ceil_div(s.P, G::BN), stream, x, dt, Bm, cum,
                                     st, states, s, false);
}

// Forward step 5 (outputs) tiled.
template <class C>
cudaError_t ssd_tiled_output(const C* x, const C* dt, const C* Cm, const C* cum, const C* cb, const C* states,
                             const int64_t* st, C* y, const SsdShape& s, cudaStream_t stream) {
  using G = TileGeom<C>;
  return launch_blocks<kTileThreads>(ssd_output_tiled_kernel<C>,
                                     s.B * s.nc * s.H * ceil_div(s.Q, G::BM) * ceil_div(s.P, G::BN), stream, x, dt,
                                     Cm, cum, cb, states, st, y, s);
}

}  // namespace
}  // namespace dynarch::cuda

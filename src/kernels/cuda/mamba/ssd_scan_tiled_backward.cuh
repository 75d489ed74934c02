// Tiled forms of the GEMM-shaped backward steps of the SSD chunked scan (the
// numbering and the math are ssd_scan_backward.cu's, whose naive kernels are
// the reference), one output tile per block as in ssd_scan_tiled.cuh:
//   2. dchunk: the forward's chunk-state kernel with C for B and exp(cum) gy for w x
//   4. dpos:   per (b, chunk, head, l tile), over the p tiles in turn: y (the
//      forward's output tile, for gy . y) and
//      u = exp(cum_end - cum_l) B_l dS_out + sum_{i>=l} cb[i, l] exp(cum_i - cum_l) gy_i;
//      dx = dt u, then the row sums x . u and gy . y through shared memory
//   7. dcb:    per (b, chunk, i tile, j tile), the heads in turn: gy_h x_h^T
//      (K = P) scaled by exp(cum_i - cum_j) dt_j into per-thread sums
//   8. dC = dcb B + sum_h (exp(cum) gy_h) S_in_h^T,
//      dB = dcb^T C + sum_h (dt exp(cum_end - cum) x_h) dS_out_h^T: one K loop
//      over the chunk, then one per head (K = P)
// No atomics: every output element is written by one block. Sequence starts
// (st; null: none) as in the forward tiles and the naive kernels: dchunk sums
// the positions the entering state reaches, dcb is zero before i's start (so
// the dcb and cb terms of dpos, dC and dB need no mask of their own), the
// dS_out terms of dpos and dB take the chunk state's positions only, the S_in
// term of dC the entering state's. The reverse state pass and the log-decay
// gradient (zero at each start) are the naive kernels', shared by both.
#pragma once
#include "kernels/cuda/mamba/ssd_scan_tiled.cuh"

namespace dynarch::cuda {
namespace {

// 4. xu (B, L, H) = x . u, dcum = gy . y - dt x . u, and dx = dt u (when dx is given).
template <class C>
__global__ void __launch_bounds__(kTileThreads)
    ssd_dpos_tiled_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Bm,
                          const C* __restrict__ Cm, const C* __restrict__ gy, const C* __restrict__ cum,
                          const C* __restrict__ cb, const C* __restrict__ states, const C* __restrict__ dstates,
                          const int64_t* __restrict__ st, C* __restrict__ dx, C* __restrict__ xu,
                          C* __restrict__ dcum, SsdShape s) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tl = ceil_div(s.Q, G::BM), r0 = (blk % tl) * G::BM;
  blk /= tl;
  const int64_t h = blk % s.H, c = blk / s.H % s.nc, b = blk / (s.H * s.nc);
  const SsdChunk ch = ssd_chunk(s, c, st, b);
  if (r0 >= ch.len) return;  // uniform over the block
  const C* cm = cum + (b * s.H + h) * s.L + ch.l0;
  const C end = cm[ch.len - 1];
  const int64_t row = b * s.L + ch.l0;
  const C* ds = dstates + ((b * s.nc + c) * s.H + h) * s.N * s.P;
  auto pos = [&](int64_t l, int64_t p) { return ((row + l) * s.H + h) * s.P + p; };  // (B, L, H, P) index
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  DYNARCH_SHARED C sgy[G::BM], sxu[G::BM];  // row sums of gy . y and x . u
  block_phase<kTileThreads>([&](int t) {
    if (t < G::BM) sgy[t] = sxu[t] = 0;
  });
  TileAcc<C> acc;
  for (int64_t p0 = 0; p0 < s.P; p0 += G::BN) {
    if (gy) {
      tile_zero<C>(acc);
      ssd_y_tile(acc, smem, x, dt, Cm, cum, cb, states, st, s, ch, b, c, h, r0, p0);
      tile_to_smem<C>(acc, smem);
      tile_for_each<C>(smem, [&](int r, int q, C& v) {
        v = r0 + r < ch.len && p0 + q < s.P ? gy[pos(r0 + r, p0 + q)] * v : C(0);
      });
      tile_add_row_sums<C>(smem, sgy);
    }
    tile_zero<C>(acc);
    if (r0 + G::BM > ch.from)  // uniform over the block
      tile_accumulate<Major::row, Major::row, C>(
          acc, smem, ceil_div(s.N, G::KT),
          [&](int64_t kt, int r, int k) {  // A (l, n) = exp(cum_end - cum_l) B_l[n], l in the final state's sequence
            const int64_t l = r0 + r, n = kt * G::KT + k;
            return l >= ch.from && l < ch.len && n < s.N ? exp(end - cm[l]) * Bm[(row + l) * s.N + n] : C(0);
          },
          [&](int64_t kt, int k, int q) {  // B (n, p) = dS_out[n, p]
            const int64_t n = kt * G::KT + k;
            return n < s.N && p0 + q < s.P ? ds[n * s.P + p0 + q] : C(0);
          }, ssd_tf32_split(s));
    if (gy)  // cb[i, l] = 0 for l before i's start
      tile_accumulate<Major::col, Major::row, C>(
          acc, smem, ceil_div(ch.len - r0, G::KT),
          [&](int64_t kt, int r, int k) {  // A (l, i) = cb[i, l] exp(cum_i - cum_l), i >= l
            const int64_t l = r0 + r, i = r0 + kt * G::KT + k;
            return i < ch.len && i >= l ? cb[(row + i) * s.Q + l] * exp(cm[i] - cm[l]) : C(0);
          },
          [&](int64_t kt, int k, int q) {  // B (i, p) = gy_i[p]
            const int64_t i = r0 + kt * G::KT + k;
            return i < ch.len && p0 + q < s.P ? gy[pos(i, p0 + q)] : C(0);
          }, ssd_tf32_split(s));
    tile_to_smem<C>(acc, smem);
    tile_for_each<C>(smem, [&](int r, int q, C& v) {
      const int64_t l = r0 + r, p = p0 + q;
      if (l >= ch.len || p >= s.P) {
        v = 0;
        return;
      }
      if (dx) dx[pos(l, p)] = dt[(row + l) * s.H + h] * v;
      v *= x[pos(l, p)];
    });
    tile_add_row_sums<C>(smem, sxu);
  }
  block_phase<kTileThreads>([&](int t) {
    if (t >= G::BM || r0 + t >= ch.len) return;
    const int64_t lh = (row + r0 + t) * s.H + h;
    xu[lh] = sxu[t];
    dcum[lh] = sgy[t] - dt[lh] * sxu[t];
  });
}

// 7. dcb (B, L, Q): dcb[i, j] = sum_h exp(cum_i - cum_j) dt_j gy_i . x_j for
// j <= i from i's sequence start on, zeros elsewhere.
template <class C>
__global__ void __launch_bounds__(kTileThreads)
    ssd_dcb_tiled_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ gy,
                         const C* __restrict__ cum, const int64_t* __restrict__ st, C* __restrict__ dcb, SsdShape s) {
  using G = TileGeom<C>;
  constexpr int kPer = G::BM * G::BN / kTileThreads;  // sums per thread: elements t + kTileThreads m
  static_assert(kPer <= 32, "one mask bit per sum");
  int64_t blk = blockIdx.x;
  const int64_t tj = ceil_div(s.Q, G::BN), ti = ceil_div(s.Q, G::BM);
  const int64_t j0 = (blk % tj) * G::BN, r0 = (blk / tj % ti) * G::BM;
  blk /= tj * ti;
  const int64_t c = blk % s.nc, b = blk / s.nc;
  const SsdChunk ch = ssd_chunk(s, c, st, b);
  if (r0 >= ch.len) return;  // uniform over the block
  const int64_t row = b * s.L + ch.l0;
  // Tiles above the diagonal or wholly before the first row's start (rows start there or later) skip the heads.
  const bool any = j0 <= r0 + G::BM - 1 && j0 + G::BN > ssd_local_start(st, s, b, ch, r0);
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  DYNARCH_SHARED C srow[G::BM], scol[G::BN], sdt[G::BN];  // cum_i, cum_j, dt_j of the head
  PerThread<C[kPer], kTileThreads> total;
  PerThread<uint32_t, kTileThreads> keep;  // bit m: element t + kTileThreads m has j <= i, j >= i's start, in the data
  block_phase<kTileThreads>([&](int t) {
    keep[t] = 0;
#pragma unroll
    for (int m = 0; m < kPer; ++m) {
      total[t][m] = 0;
      const int e = t + kTileThreads * m, r = e / G::BN, q = e % G::BN;
      const int64_t i = r0 + r, j = j0 + q;
      if (i < ch.len && j <= i && (!st || j >= ssd_local_start(st, s, b, ch, i))) keep[t] |= 1u << m;
    }
  });
  TileAcc<C> acc;
  for (int64_t h = 0; h < s.H && any; ++h) {
    const C* cm = cum + (b * s.H + h) * s.L + ch.l0;
    block_phase<kTileThreads>([&](int t) {
      if (t < G::BM) srow[t] = r0 + t < ch.len ? cm[r0 + t] : C(0);
      if (t < G::BN) scol[t] = j0 + t < ch.len ? cm[j0 + t] : C(0);
      if (t < G::BN) sdt[t] = j0 + t < ch.len ? dt[(row + j0 + t) * s.H + h] : C(0);
    });
    tile_zero<C>(acc);
    tile_accumulate<Major::row, Major::col, C>(
        acc, smem, ceil_div(s.P, G::KT),
        [&](int64_t kt, int r, int k) {  // A (i, p) = gy_i[p]
          const int64_t p = kt * G::KT + k;
          return r0 + r < ch.len && p < s.P ? gy[((row + r0 + r) * s.H + h) * s.P + p] : C(0);
        },
        [&](int64_t kt, int k, int q) {  // B (p, j) = x_j[p]
          const int64_t p = kt * G::KT + k;
          return j0 + q < ch.len && p < s.P ? x[((row + j0 + q) * s.H + h) * s.P + p] : C(0);
        }, ssd_tf32_split(s));
    tile_to_smem<C>(acc, smem);
    block_phase<kTileThreads>([&](int t) {
#pragma unroll
      for (int m = 0; m < kPer; ++m) {
        const int e = t + kTileThreads * m, r = e / G::BN, q = e % G::BN;
        if (keep[t] >> m & 1u) total[t][m] += exp(srow[r] - scol[q]) * sdt[q] * smem[r * G::kLdOut + q];
      }
    });
  }
  block_phase<kTileThreads>([&](int t) {
#pragma unroll
    for (int m = 0; m < kPer; ++m) {
      const int e = t + kTileThreads * m, r = e / G::BN, q = e % G::BN;
      if (r0 + r < ch.len && j0 + q < s.Q) dcb[(row + r0 + r) * s.Q + j0 + q] = keep[t] >> m & 1u ? total[t][m] : C(0);
    }
  });
}

// 8a. dC (B, L, N), block (b, c, i tile, n tile); zeros without gy.
template <class C>
__global__ void __launch_bounds__(kTileThreads, 2)
    ssd_dC_tiled_kernel(const C* __restrict__ Bm, const C* __restrict__ gy, const C* __restrict__ cum,
                        const C* __restrict__ states, const C* __restrict__ dcb, const int64_t* __restrict__ st,
                        C* __restrict__ dCm, SsdShape s) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tn = ceil_div(s.N, G::BN), ti = ceil_div(s.Q, G::BM);
  const int64_t n0 = (blk % tn) * G::BN, r0 = (blk / tn % ti) * G::BM;
  blk /= tn * ti;
  const int64_t c = blk % s.nc, b = blk / s.nc;
  const SsdChunk ch = ssd_chunk(s, c, st, b);
  if (r0 >= ch.len) return;  // uniform over the block
  const int64_t row = b * s.L + ch.l0;
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  TileAcc<C> acc;
  tile_zero<C>(acc);
  if (gy) {
    const int64_t src_end = ch.len < r0 + G::BM ? ch.len : r0 + G::BM;  // positions j < src_end
    const int64_t first = ssd_local_start(st, s, b, ch, r0), src0 = first > 0 ? first : 0;  // and j >= src0
    tile_accumulate<Major::row, Major::row, C>(
        acc, smem, ceil_div(src_end - src0, G::KT),
        [&](int64_t kt, int r, int k) {  // A (i, j) = dcb[i, j], j <= i (zero before i's start)
          const int64_t i = r0 + r, j = src0 + kt * G::KT + k;
          return i < ch.len && j <= i ? dcb[(row + i) * s.Q + j] : C(0);
        },
        [&](int64_t kt, int k, int q) {  // B (j, n) = B_j[n]
          const int64_t j = src0 + kt * G::KT + k;
          return j < src_end && n0 + q < s.N ? Bm[(row + j) * s.N + n0 + q] : C(0);
        }, ssd_tf32_split(s));
    for (int64_t h = 0; h < s.H && r0 < ch.reach; ++h) {  // rows the entering state reaches
      const C* cm = cum + (b * s.H + h) * s.L + ch.l0;
      const C* st = states + ((b * s.nc + c) * s.H + h) * s.N * s.P;
      tile_accumulate<Major::row, Major::col, C>(
          acc, smem, ceil_div(s.P, G::KT),
          [&](int64_t kt, int r, int k) {  // A (i, p) = exp(cum_i) gy_i[p], i < reach
            const int64_t i = r0 + r, p = kt * G::KT + k;
            return i < ch.reach && p < s.P ? exp(cm[i]) * gy[((row + i) * s.H + h) * s.P + p] : C(0);
          },
          [&](int64_t kt, int k, int q) {  // B (p, n) = S_in[n, p]
            const int64_t p = kt * G::KT + k;
            return p < s.P && n0 + q < s.N ? st[(n0 + q) * s.P + p] : C(0);
          }, ssd_tf32_split(s));
    }
  }
  tile_finish<C>(acc, smem, [&](int r, int q, C v) {
    if (r0 + r < ch.len && n0 + q < s.N) dCm[(row + r0 + r) * s.N + n0 + q] = v;
  });
}

// 8b. dB (B, L, N), block (b, c, j tile, n tile); dcb null: no C.B term.
template <class C>
__global__ void __launch_bounds__(kTileThreads, 2)
    ssd_dB_tiled_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Cm,
                        const C* __restrict__ cum, const C* __restrict__ dstates, const C* __restrict__ dcb,
                        const int64_t* __restrict__ st, C* __restrict__ dBm, SsdShape s) {
  using G = TileGeom<C>;
  int64_t blk = blockIdx.x;
  const int64_t tn = ceil_div(s.N, G::BN), tj = ceil_div(s.Q, G::BM);
  const int64_t n0 = (blk % tn) * G::BN, r0 = (blk / tn % tj) * G::BM;
  blk /= tn * tj;
  const int64_t c = blk % s.nc, b = blk / s.nc;
  const SsdChunk ch = ssd_chunk(s, c, st, b);
  if (r0 >= ch.len) return;  // uniform over the block
  const int64_t row = b * s.L + ch.l0;
  alignas(128) DYNARCH_SHARED C smem[G::kSmem];
  TileAcc<C> acc;
  tile_zero<C>(acc);
  if (dcb)
    tile_accumulate<Major::col, Major::row, C>(
        acc, smem, ceil_div(ch.len - r0, G::KT),
        [&](int64_t kt, int r, int k) {  // A (j, i) = dcb[i, j], i >= j (zero before i's start)
          const int64_t j = r0 + r, i = r0 + kt * G::KT + k;
          return j < ch.len && i < ch.len && i >= j ? dcb[(row + i) * s.Q + j] : C(0);
        },
        [&](int64_t kt, int k, int q) {  // B (i, n) = C_i[n]
          const int64_t i = r0 + kt * G::KT + k;
          return i < ch.len && n0 + q < s.N ? Cm[(row + i) * s.N + n0 + q] : C(0);
        }, ssd_tf32_split(s));
  for (int64_t h = 0; h < s.H && r0 + G::BM > ch.from; ++h) {  // rows in the chunk state's sequence
    const C* cm = cum + (b * s.H + h) * s.L + ch.l0;
    const C end = cm[ch.len - 1];
    const C* ds = dstates + ((b * s.nc + c) * s.H + h) * s.N * s.P;
    tile_accumulate<Major::row, Major::col, C>(
        acc, smem, ceil_div(s.P, G::KT),
        [&](int64_t kt, int r, int k) {  // A (j, p) = dt_j exp(cum_end - cum_j) x_j[p], j >= from
          const int64_t j = r0 + r, p = kt * G::KT + k;
          if (j < ch.from || j >= ch.len || p >= s.P) return C(0);
          const int64_t jh = (row + j) * s.H + h;
          return dt[jh] * exp(end - cm[j]) * x[jh * s.P + p];
        },
        [&](int64_t kt, int k, int q) {  // B (p, n) = dS_out[n, p]
          const int64_t p = kt * G::KT + k;
          return p < s.P && n0 + q < s.N ? ds[(n0 + q) * s.P + p] : C(0);
        }, ssd_tf32_split(s));
  }
  tile_finish<C>(acc, smem, [&](int r, int q, C v) {
    if (r0 + r < ch.len && n0 + q < s.N) dBm[(row + r0 + r) * s.N + n0 + q] = v;
  });
}

// Launchers of the steps above, each like its naive counterpart.
template <class C>
cudaError_t ssd_tiled_dchunk(const C* Cm, const C* gy, const C* cum, const int64_t* st, C* dstates,
                             const SsdShape& s, cudaStream_t stream) {
  using G = TileGeom<C>;
  return launch_blocks<kTileThreads>(ssd_states_tiled_kernel<C>,
                                     s.B * s.nc * s.H * ceil_div(s.N, G::BM) * ceil_div(s.P, G::BN), stream, gy,
                                     static_cast<const C*>(nullptr), Cm, cum, st, dstates, s, true);
}

template <class C>
cudaError_t ssd_tiled_dpos(const C* x, const C* dt, const C* Bm, const C* Cm, const C* gy, const C* cum, const C* cb,
                           const C* states, const C* dstates, const int64_t* st, C* dx, C* xu, C* dcum,
                           const SsdShape& s, cudaStream_t stream) {
  return launch_blocks<kTileThreads>(ssd_dpos_tiled_kernel<C>, s.B * s.nc * s.H * ceil_div(s.Q, TileGeom<C>::BM),
                                     stream, x, dt, Bm, Cm, gy, cum, cb, states, dstates, st, dx, xu, dcum, s);
}

template <class C>
cudaError_t ssd_tiled_dcb(const C* x, const C* dt, const C* gy, const C* cum, const int64_t* st, C* dcb,
                          const SsdShape& s, cudaStream_t stream) {
  using G = TileGeom<C>;
  return launch_blocks<kTileThreads>(ssd_dcb_tiled_kernel<C>, s.B * s.nc * ceil_div(s.Q, G::BM) * ceil_div(s.Q, G::BN),
                                     stream, x, dt, gy, cum, st, dcb, s);
}

template <class C>
cudaError_t ssd_tiled_dC(const C* Bm, const C* gy, const C* cum, const C* states, const C* dcb, const int64_t* st,
                         C* dCm, const SsdShape& s, cudaStream_t stream) {
  using G = TileGeom<C>;
  return launch_blocks<kTileThreads>(ssd_dC_tiled_kernel<C>, s.B * s.nc * ceil_div(s.Q, G::BM) * ceil_div(s.N, G::BN),
                                     stream, Bm, gy, cum, states, dcb, st, dCm, s);
}

template <class C>
cudaError_t ssd_tiled_dB(const C* x, const C* dt, const C* Cm, const C* cum, const C* dstates, const C* dcb,
                         const int64_t* st, C* dBm, const SsdShape& s, cudaStream_t stream) {
  using G = TileGeom<C>;
  return launch_blocks<kTileThreads>(ssd_dB_tiled_kernel<C>, s.B * s.nc * ceil_div(s.Q, G::BM) * ceil_div(s.N, G::BN),
                                     stream, x, dt, Cm, cum, dstates, dcb, st, dBm, s);
}

}  // namespace
}  // namespace dynarch::cuda

// Mamba-2 SSD chunked scan backward on CUDA, in the chunked structure of the
// forward (ssd_scan_kernels.cuh) and, like it, without any per-head L x L or
// Q x Q matrix in device memory.
//
// Per head, with G_l = gy_l (x) C_l and dS_l the gradient of the state S_l
// (P x N), the sequential recurrence gives dS_l = exp(dt_{l+1} a) dS_{l+1} + G_l
// (dS_{L-1} = g_final + G_{L-1}) and
//   u_l      = dS_l B_l                      (P)
//   dx_l     = dt_l u_l
//   ddt_l    = x_l . u_l + a g_l             g_l: gradient of the log-decay dt_l a
//   da       = sum_{b, l} dt_l g_l
//   dB_l     = sum_h dt_l dS_l^T x_l,   dC_l = sum_h S_l^T gy_l
//   dinit    = exp(dt_0 a) dS_0.
// Chunked (cum: within-chunk prefix sums of dt a, "end": a chunk's last position):
//   1. rerun forward steps 1-4: cum, cb = C.B, the chunk-entry states S_in
//   2. dchunk: sum_l exp(cum_l) gy_l (x) C_l per chunk                   (B, c, H, N, P)
//   3. reverse state pass, in place: the gradient dS_out leaving chunk c
//      (from the positions after it and g_final); dinit = what enters chunk 0
//   4. per (b, l, h), one warp, lanes over P:
//        u_l = exp(cum_end - cum_l) dS_out B_l + sum_{i>=l} cb[i, l] exp(cum_i - cum_l) gy_i
//      dx; x_l . u_l; and dcum_l = gy_l . y_l - dt_l x_l . u_l (y_l recomputed), the
//      gradient of cum_l taken as free
//   5. <dS_out, S_end> per chunk (one warp each): the gradient of cum_end from
//      the state leaving the chunk
//   6. g_l = <dS_out, S_end> + sum_{k=l..end} dcum_k (a reverse sum inside the
//      chunk, one thread per (b, chunk, h)): ddt, and the per-chunk partials of da
//   7. dcb[i, j] = sum_h exp(cum_i - cum_j) dt_j gy_i . x_j   (B, L, Q), the
//      gradient of C_i . B_j (shared by the heads, like cb)
//   8. dC_i = sum_j dcb[i, j] B_j + sum_h exp(cum_i) S_in^T gy_i
//      dB_j = sum_i dcb[i, j] C_i + sum_h dt_j exp(cum_end - cum_j) dS_out^T x_j
//   9. da[h]: the partials of 6 summed in a fixed order.
// Packed rows (seq_start): the forward's masks on every term (2: positions
// the entering state reaches; 3: a chunk carries dS across only if its state
// does; 4, 7, 8: cb's mask and the chunk state's positions), and g_l = 0
// exactly at each sequence start (the true value; a cancelling sum otherwise),
// so nothing before a start sees anything after it. The tiled forms of 2, 4,
// 7, 8 (ssd_scan_tiled_backward.cuh) take the same masks.
// Every exponent is <= 0, as in the forward. g_l follows from
// g_l = exp(dt_l a) <dS_l, S_{l-1}> = <dS_l, S_l> - dt_l x_l . u_l and
// <dS_l, S_l> = g_{l+1} + gy_l . y_l.
#include "kernels/cuda/mamba/ssd_scan_kernels.cuh"
#include "kernels/cuda/mamba/ssd_scan_tiled_backward.cuh"

namespace dynarch::cuda {
namespace {

// Warp-per-item kernels: lanes stride over a row, then a shuffle sum. The host
// emulation runs the lanes one at a time, so there each lane does the whole row.
#ifdef DYNARCH_CUDA_EMULATE
__device__ __forceinline__ int64_t ssd_lane() { return 0; }
constexpr int64_t kSsdLanes = 1;
template <class C>
__device__ __forceinline__ C ssd_warp_sum(C v) {
  return v;
}
#else
__device__ __forceinline__ int64_t ssd_lane() { return threadIdx.x % 32; }
constexpr int64_t kSsdLanes = 32;
template <class C>
__device__ __forceinline__ C ssd_warp_sum(C v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
#endif

// Offset of the (N, P) state block of (b, chunk c, head h) in a (B, c, H, N, P) array.
__device__ __forceinline__ int64_t ssd_block(const SsdShape& s, int64_t b, int64_t c, int64_t h) {
  return ((b * s.nc + c) * s.H + h) * s.N * s.P;
}

// 2. dchunk[b, c, h, n, p] = sum_{l in c} exp(cum_l) gy_l[p] C_l[n] (zeros without gy).
template <class C>
__global__ void ssd_dchunk_kernel(const C* __restrict__ Cm, const C* __restrict__ gy, const C* __restrict__ cum,
                                  const int64_t* __restrict__ st, C* __restrict__ dstates, SsdShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.nc * s.H * s.N * s.P) {
    const int64_t p = i % s.P, n = (i / s.P) % s.N, h = (i / (s.P * s.N)) % s.H, bc = i / (s.P * s.N * s.H);
    const int64_t c = bc % s.nc, b = bc / s.nc;
    const C* cm = cum + (b * s.H + h) * s.L;
    C acc = 0;
    if (gy)
      for (int64_t l = c * s.Q; l <= ssd_chunk_end(s, c); ++l) {
        if (!ssd_takes_in(st, s, b, l)) break;  // the positions it reaches are a prefix of the chunk
        const int64_t r = b * s.L + l;
        acc += exp(cm[l]) * gy[(r * s.H + h) * s.P + p] * Cm[r * s.N + n];
      }
    dstates[i] = acc;
  }
}

// 3. In place, last chunk first: dstates[c] becomes dS_out of chunk c; dinit = dS_in of chunk 0.
template <class C>
__global__ void ssd_dstate_pass_kernel(const C* __restrict__ g_final, const C* __restrict__ cum,
                                       const int64_t* __restrict__ st, C* __restrict__ dstates,
                                       C* __restrict__ dinit, SsdShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.H * s.N * s.P) {
    const int64_t p = i % s.P, n = (i / s.P) % s.N, bh = i / (s.P * s.N), h = bh % s.H, b = bh / s.H;
    const int64_t pn = (bh * s.P + p) * s.N + n;  // (B, H, P, N) index
    C prev = g_final ? g_final[pn] : C(0);
    for (int64_t c = s.nc - 1; c >= 0; --c) {
      const int64_t e = ssd_block(s, b, c, h) + n * s.P + p;
      const C own = dstates[e];
      dstates[e] = prev;
      const int64_t end = ssd_chunk_end(s, c);
      prev = (ssd_takes_in(st, s, b, end) ? exp(cum[bh * s.L + end]) * prev : C(0)) + own;
    }
    if (dinit) dinit[pn] = prev;
  }
}

// 4. One warp per (b, l, h): u_l[p] (lanes over p), dx, x . u and dcum_l.
template <class C>
__global__ void ssd_dpos_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Bm,
                                const C* __restrict__ Cm, const C* __restrict__ gy, const C* __restrict__ cum,
                                const C* __restrict__ cb, const C* __restrict__ states, const C* __restrict__ dstates,
                                const int64_t* __restrict__ st, C* __restrict__ dx, C* __restrict__ xu,
                                C* __restrict__ dcum, SsdShape s) {
  DYNARCH_WARP_LOOP(w, s.B * s.L * s.H) {
    const int64_t h = w % s.H, bl = w / s.H, l = bl % s.L, b = bl / s.L;
    const int64_t c = l / s.Q, l0 = c * s.Q, end = ssd_chunk_end(s, c);
    const bool to_state = l >= ssd_seq_start(st, s, b, end);  // l enters the chunk's final state
    const C* cm = cum + (b * s.H + h) * s.L;
    const C cl = cm[l], dtl = dt[w], carry = exp(cm[end] - cl);
    const C* ds = dstates + ssd_block(s, b, c, h);
    C sxu = 0, sgy = 0;
    for (int64_t p = ssd_lane(); p < s.P; p += kSsdLanes) {
      C u = 0;
      if (to_state) {
        C from_out = 0;
        for (int64_t n = 0; n < s.N; ++n) from_out += ds[n * s.P + p] * Bm[bl * s.N + n];
        u = carry * from_out;
      }
      if (gy) {
        for (int64_t i = l; i <= end; ++i) {
          if (ssd_seq_start(st, s, b, i) > l) break;  // i and all after it in later sequences
          const int64_t r = b * s.L + i;
          u += cb[r * s.Q + (l - l0)] * exp(cm[i] - cl) * gy[(r * s.H + h) * s.P + p];
        }
        sgy += gy[w * s.P + p] * ssd_output_at(x, dt, Cm, cum, cb, states, st, s, b, l, h, p);
      }
      if (dx) dx[w * s.P + p] = dtl * u;
      sxu += x[w * s.P + p] * u;
    }
    sxu = ssd_warp_sum(sxu);
    sgy = ssd_warp_sum(sgy);
    if (threadIdx.x % 32 == 0) {
      xu[w] = sxu;
      dcum[w] = sgy - dtl * sxu;
    }
  }
}

// 5. One warp per (b, c, h): <dS_out, S_end>, S_end the state entering chunk c + 1
// (or the final state, (B, H, P, N), after the last chunk).
template <class C>
__global__ void ssd_dend_kernel(const C* __restrict__ states, const C* __restrict__ final_state,
                                const C* __restrict__ dstates, C* __restrict__ dend, SsdShape s) {
  DYNARCH_WARP_LOOP(w, s.B * s.nc * s.H) {
    const int64_t h = w % s.H, bc = w / s.H, c = bc % s.nc, b = bc / s.nc;
    const C* ds = dstates + ssd_block(s, b, c, h);
    const bool last = c + 1 == s.nc;
    const C* next = last ? final_state + (b * s.H + h) * s.P * s.N : states + ssd_block(s, b, c + 1, h);
    C acc = 0;
    for (int64_t e = ssd_lane(); e < s.N * s.P; e += kSsdLanes) {
      const int64_t n = e / s.P, p = e % s.P;
      acc += ds[e] * next[last ? p * s.N + n : e];
    }
    acc = ssd_warp_sum(acc);
    if (threadIdx.x % 32 == 0) dend[w] = acc;
  }
}

// 6. One thread per (b, c, h), positions last to first: the log-decay gradient
// g_l, ddt_l = x_l . u_l + a g_l, and the chunk's partial of da.
template <class C>
__global__ void ssd_dlogdecay_kernel(const C* __restrict__ dt, const C* __restrict__ a, const C* __restrict__ xu,
                                     const C* __restrict__ dcum, const C* __restrict__ dend,
                                     const int64_t* __restrict__ st, C* __restrict__ ddt, C* __restrict__ da_part,
                                     SsdShape s) {
  DYNARCH_GRID_LOOP(i, s.B * s.nc * s.H) {
    const int64_t h = i % s.H, bc = i / s.H, c = bc % s.nc, b = bc / s.nc;
    C g = dend[i], acc = 0;
    for (int64_t l = ssd_chunk_end(s, c); l >= c * s.Q; --l) {
      const int64_t r = (b * s.L + l) * s.H + h;
      if (l > 0 && ssd_seq_start(st, s, b, l) == l)
        g = 0;  // a sequence start: the reset decay has no gradient; what was summed after it cancels
      else
        g += dcum[r];
      if (ddt) ddt[r] = xu[r] + a[h] * g;
      acc += dt[r] * g;
    }
    da_part[i] = acc;
  }
}

// 7. dcb[b, i, j - l0] = sum_h exp(cum_i - cum_j) dt_j gy_i . x_j for j <= i in i's chunk, else 0.
template <class C>
__global__ void ssd_dcb_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ gy,
                               const C* __restrict__ cum, const int64_t* __restrict__ st, C* __restrict__ dcb,
                               SsdShape s) {
  DYNARCH_GRID_LOOP(k, s.B * s.L * s.Q) {
    const int64_t jj = k % s.Q, bi = k / s.Q, i = bi % s.L, b = bi / s.L;
    const int64_t j = (i / s.Q) * s.Q + jj, bj = b * s.L + j;
    C acc = 0;
    if (j <= i && j >= ssd_seq_start(st, s, b, i))
      for (int64_t h = 0; h < s.H; ++h) {
        const C* cm = cum + (b * s.H + h) * s.L;
        const C* g = gy + (bi * s.H + h) * s.P;
        const C* xv = x + (bj * s.H + h) * s.P;
        C dot = 0;
        for (int64_t p = 0; p < s.P; ++p) dot += g[p] * xv[p];
        acc += exp(cm[i] - cm[j]) * dt[bj * s.H + h] * dot;
      }
    dcb[k] = acc;
  }
}

// 8a. dC[b, i, n] = sum_{j <= i} dcb[i, j] B_j[n] + sum_h exp(cum_i) sum_p gy_i[p] S_in[n, p].
template <class C>
__global__ void ssd_dC_kernel(const C* __restrict__ Bm, const C* __restrict__ gy, const C* __restrict__ cum,
                              const C* __restrict__ states, const C* __restrict__ dcb, const int64_t* __restrict__ st,
                              C* __restrict__ dCm, SsdShape s) {
  DYNARCH_GRID_LOOP(k, s.B * s.L * s.N) {
    const int64_t n = k % s.N, bi = k / s.N, i = bi % s.L, b = bi / s.L;
    const int64_t c = i / s.Q, l0 = c * s.Q, from = ssd_seq_start(st, s, b, i);
    C acc = 0;
    if (gy) {
      for (int64_t j = from > l0 ? from : l0; j <= i; ++j)
        acc += dcb[bi * s.Q + (j - l0)] * Bm[(b * s.L + j) * s.N + n];
      if (ssd_takes_in(st, s, b, i))
        for (int64_t h = 0; h < s.H; ++h) {
          const C* enter = states + ssd_block(s, b, c, h) + n * s.P;
          const C* g = gy + (bi * s.H + h) * s.P;
          C dot = 0;
          for (int64_t p = 0; p < s.P; ++p) dot += g[p] * enter[p];
          acc += exp(cum[(b * s.H + h) * s.L + i]) * dot;
        }
    }
    dCm[k] = acc;
  }
}

// 8b. dB[b, j, n] = sum_{i >= j} dcb[i, j] C_i[n] + sum_h dt_j exp(cum_end - cum_j) sum_p dS_out[n, p] x_j[p].
template <class C>
__global__ void ssd_dB_kernel(const C* __restrict__ x, const C* __restrict__ dt, const C* __restrict__ Cm,
                              const C* __restrict__ cum, const C* __restrict__ dstates, const C* __restrict__ dcb,
                              const int64_t* __restrict__ st, C* __restrict__ dBm, SsdShape s) {
  DYNARCH_GRID_LOOP(k, s.B * s.L * s.N) {
    const int64_t n = k % s.N, bj = k / s.N, j = bj % s.L, b = bj / s.L;
    const int64_t c = j / s.Q, l0 = c * s.Q, end = ssd_chunk_end(s, c);
    C acc = 0;
    if (dcb)
      for (int64_t i = j; i <= end; ++i) {
        if (ssd_seq_start(st, s, b, i) > j) break;  // dcb[i, j] = 0 from here on
        const int64_t bi = b * s.L + i;
        acc += dcb[bi * s.Q + (j - l0)] * Cm[bi * s.N + n];
      }
    if (j >= ssd_seq_start(st, s, b, end))  // j enters the chunk's final state
      for (int64_t h = 0; h < s.H; ++h) {
        const C* cm = cum + (b * s.H + h) * s.L;
        const C* ds = dstates + ssd_block(s, b, c, h) + n * s.P;
        const C* xv = x + (bj * s.H + h) * s.P;
        C dot = 0;
        for (int64_t p = 0; p < s.P; ++p) dot += ds[p] * xv[p];
        acc += dt[bj * s.H + h] * exp(cm[end] - cm[j]) * dot;
      }
    dBm[k] = acc;
  }
}

// 9. da[h] = sum over (b, chunk) of the partials, in that order.
template <class C>
__global__ void ssd_da_kernel(const C* __restrict__ da_part, C* __restrict__ da, SsdShape s) {
  DYNARCH_GRID_LOOP(h, s.H) {
    C acc = 0;
    for (int64_t bc = 0; bc < s.B * s.nc; ++bc) acc += da_part[bc * s.H + h];
    da[h] = acc;
  }
}

}  // namespace

template <class C>
cudaError_t ssd_backward_chunked(const C* x, const C* dt, const C* a, const C* Bm, const C* Cm, const C* init,
                                 const int64_t* st, const C* gy, const C* g_final, C* dx, C* ddt, C* da, C* dBm,
                                 C* dCm, C* dinit, C* scratch, SsdShape s, cudaStream_t stream) {
  if (s.Q < 1) return cudaErrorInvalidValue;
  const int64_t nc = s.nc, BLH = s.B * s.L * s.H, BcH = s.B * nc * s.H;
  const C* cum = scratch;
  const C* cb = cum + s.B * s.H * s.L;
  const C* states = cb + s.B * s.L * s.Q;
  C* fin = scratch + ssd_scratch_elems(s);
  C* dstates = fin + s.B * s.H * s.P * s.N;
  C* dcb = dstates + BcH * s.N * s.P;
  C* xu = dcb + s.B * s.L * s.Q;
  C* dcum = xu + BLH;
  C* dend = dcum + BLH;
  C* da_part = dend + BcH;
  DYNARCH_CUDA_TRY(ssd_forward_states(x, dt, a, Bm, Cm, init, st, fin, scratch, s, stream));
  // Steps 2, 4, 7, 8 tiled (ssd_scan_tiled_backward.cuh, with the same masks), starts or not.
  const bool tiled = ssd_use_tiled(s);
  if (s.L > 0 && tiled) DYNARCH_CUDA_TRY(ssd_tiled_dchunk(Cm, gy, cum, st, dstates, s, stream));
  else if (s.L > 0)
    DYNARCH_CUDA_TRY(launch(ssd_dchunk_kernel<C>, BcH * s.N * s.P, stream, Cm, gy, cum, st, dstates, s));
  DYNARCH_CUDA_TRY(
      launch(ssd_dstate_pass_kernel<C>, s.B * s.H * s.N * s.P, stream, g_final, cum, st, dstates, dinit, s));
  if (s.L > 0) {
    const bool decay = ddt || da;
    if ((dx || decay) && tiled)
      DYNARCH_CUDA_TRY(ssd_tiled_dpos(x, dt, Bm, Cm, gy, cum, cb, states, dstates, st, dx, xu, dcum, s, stream));
    else if (dx || decay)
      DYNARCH_CUDA_TRY(launch_warps(ssd_dpos_kernel<C>, BLH, stream, x, dt, Bm, Cm, gy, cum, cb, states, dstates, st,
                                    dx, xu, dcum, s));
    if (decay) {
      DYNARCH_CUDA_TRY(launch_warps(ssd_dend_kernel<C>, BcH, stream, states, fin, dstates, dend, s));
      DYNARCH_CUDA_TRY(launch(ssd_dlogdecay_kernel<C>, BcH, stream, dt, a, xu, dcum, dend, st, ddt, da_part, s));
    }
    C* dcb_used = gy && (dBm || dCm) ? dcb : nullptr;  // null: no gy, so no C.B gradient
    if (dcb_used && tiled) DYNARCH_CUDA_TRY(ssd_tiled_dcb(x, dt, gy, cum, st, dcb_used, s, stream));
    else if (dcb_used)
      DYNARCH_CUDA_TRY(launch(ssd_dcb_kernel<C>, s.B * s.L * s.Q, stream, x, dt, gy, cum, st, dcb_used, s));
    if (dCm && tiled) DYNARCH_CUDA_TRY(ssd_tiled_dC(Bm, gy, cum, states, dcb_used, st, dCm, s, stream));
    else if (dCm)
      DYNARCH_CUDA_TRY(
          launch(ssd_dC_kernel<C>, s.B * s.L * s.N, stream, Bm, gy, cum, states, dcb_used, st, dCm, s));
    if (dBm && tiled) DYNARCH_CUDA_TRY(ssd_tiled_dB(x, dt, Cm, cum, dstates, dcb_used, st, dBm, s, stream));
    else if (dBm)
      DYNARCH_CUDA_TRY(
          launch(ssd_dB_kernel<C>, s.B * s.L * s.N, stream, x, dt, Cm, cum, dstates, dcb_used, st, dBm, s));
  }
  if (da) DYNARCH_CUDA_TRY(launch(ssd_da_kernel<C>, s.H, stream, da_part, da, s));
  return cudaSuccess;
}

#define DYNARCH_SSD_BACKWARD(C)                                                                                     \
  template cudaError_t ssd_backward_chunked<C>(const C*, const C*, const C*, const C*, const C*, const C*,        \
                                               const int64_t*, const C*, const C*, C*, C*, C*, C*, C*, C*, C*,    \
                                               SsdShape, cudaStream_t);
DYNARCH_SSD_BACKWARD(float)
DYNARCH_SSD_BACKWARD(double)
#undef DYNARCH_SSD_BACKWARD

}  // namespace dynarch::cuda

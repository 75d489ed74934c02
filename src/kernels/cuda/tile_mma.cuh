// A warp's tile product, the one place where block-level kernels (block.cuh)
// multiply matrices: acc (16 TM x 16 TN, the warp's) += A (16 TM x K) B (K x 16 TN),
// both operands in shared memory, fp32 accumulation.
//
// fp32 on sm_80+: TF32 tensor cores (WMMA m16n16k8) with the 3xTF32 split:
// a = hi + lo with hi = tf32(a), lo = tf32(a - hi), and
// a b ~ hi_a hi_b + hi_a lo_b + lo_a hi_b; the dropped lo lo term and the
// rounding of lo leave ~2^-21 relative per product instead of TF32's 2^-11, so
// the kernels stay within ~1e-6 of fp32 (one TF32 pass alone would be ~1e-3).
// Everywhere else (fp64, and the host emulation): plain FMA loops over the
// lanes' elements; in emulation the fp32 loop applies the same split with TF32
// rounding done on the bits, so emulated fp32 runs see the tensor cores' rounding.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/block.cuh"

#if !defined(DYNARCH_CUDA_EMULATE) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define DYNARCH_TF32_WMMA 1
#endif
#ifndef DYNARCH_CUDA_EMULATE
#include <mma.h>
#endif

namespace dynarch::cuda {

// TF32 rounding of an fp32 value as cvt.rna.tf32.f32 does it: to nearest, ties
// away from zero, keeping 10 explicit mantissa bits (the low 13 bits zero).
__host__ __device__ inline float tf32_round(float v) {
#ifdef DYNARCH_TF32_WMMA
  return nvcuda::wmma::__float_to_tf32(v);
#else
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;  // inf and NaN stay
  std::memcpy(&v, &u, 4);
  return v;
#endif
}

// v = hi + lo exactly, then lo rounded to TF32 too.
__host__ __device__ inline void split_tf32(float v, float& hi, float& lo) {
  hi = tf32_round(v);
  lo = tf32_round(v - hi);
}

// How an operand tile is stored: element (r, c) at p[r * ld + c] (row) or p[c * ld + r] (col).
enum class Major { row, col };
template <Major M>
__device__ __forceinline__ int tile_offset(int r, int c, int ld) {
  return M == Major::row ? r * ld + c : c * ld + r;
}

// The plain form: lane l owns the tile's elements e = l, l + kWarpLanes, ...
// in row-major order (all of them in emulation).
template <class C, int TM, int TN>
struct WarpTile {
  static constexpr int kElems = 256 * TM * TN / kWarpLanes;
  C v[kElems];
};

#ifdef DYNARCH_TF32_WMMA
template <int TM, int TN>
struct WarpTile<float, TM, TN> {
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float> f[TM][TN];
};
#endif

template <class C, int TM, int TN>
__device__ __forceinline__ void warp_tile_zero(WarpTile<C, TM, TN>& acc) {
#pragma unroll
  for (int j = 0; j < WarpTile<C, TM, TN>::kElems; ++j) acc.v[j] = 0;
}

// One product term in the plain form: fp64 exact FMA, fp32 as the tensor cores
// would do it (3xTF32, or one TF32 pass without split).
__device__ __forceinline__ double tile_madd(double s, double a, double b, bool) { return s + a * b; }
__device__ __forceinline__ float tile_madd(float s, float a, float b, bool split) {
  float ah, al, bh, bl;
  split_tf32(a, ah, al);
  split_tf32(b, bh, bl);
  return split ? s + (al * bh + ah * bl) + ah * bh : s + ah * bh;
}

// acc += A B over k in [0, K): A (16 TM x K) and B (K x 16 TN) from shared
// memory, stored as MA and MB say. The plain form for any K; the WMMA form
// needs K a multiple of 8, lda/ldb multiples of 4 and 32-byte aligned 16-row
// (and 8-column) steps, which the kernels' tile sizes guarantee. split = false
// (fp32 only): one TF32 pass, ~1e-3 relative (for measurements).
template <Major MA, Major MB, class C, int TM, int TN>
__device__ __forceinline__ void warp_tile_mma(WarpTile<C, TM, TN>& acc, const C* A, int lda, const C* B, int ldb,
                                              int K, bool split = true) {
#pragma unroll
  for (int j = 0; j < WarpTile<C, TM, TN>::kElems; ++j) {
    const int e = warp_lane() + kWarpLanes * j, i = e / (16 * TN), n = e % (16 * TN);
    C s = acc.v[j];
    for (int k = 0; k < K; ++k)
      s = tile_madd(s, A[tile_offset<MA>(i, k, lda)], B[tile_offset<MB>(k, n, ldb)], split);
    acc.v[j] = s;
  }
}

// D[i * ldd + n] = acc(i, n) (D in shared memory).
template <class C, int TM, int TN>
__device__ __forceinline__ void warp_tile_store(WarpTile<C, TM, TN>& acc, C* D, int ldd) {
#pragma unroll
  for (int j = 0; j < WarpTile<C, TM, TN>::kElems; ++j) {
    const int e = warp_lane() + kWarpLanes * j;
    D[(e / (16 * TN)) * ldd + e % (16 * TN)] = acc.v[j];
  }
}

#ifdef DYNARCH_TF32_WMMA
template <int TM, int TN>
__device__ __forceinline__ void warp_tile_zero(WarpTile<float, TM, TN>& acc) {
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) nvcuda::wmma::fill_fragment(acc.f[i][j], 0.f);
}

// A fragment's elements split in place into (hi, lo).
template <class Frag>
__device__ __forceinline__ void split_fragment(Frag& hi, Frag& lo) {
#pragma unroll
  for (int t = 0; t < hi.num_elements; ++t) split_tf32(hi.x[t], hi.x[t], lo.x[t]);
}

template <Major MA, Major MB, int TM, int TN>
__device__ __forceinline__ void warp_tile_mma(WarpTile<float, TM, TN>& acc, const float* A, int lda, const float* B,
                                              int ldb, int K, bool split = true) {
  namespace wmma = nvcuda::wmma;
  using LA = std::conditional_t<MA == Major::row, wmma::row_major, wmma::col_major>;
  using LB = std::conditional_t<MB == Major::row, wmma::row_major, wmma::col_major>;
  for (int k = 0; k < K; k += 8) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LA> ah[TM], al[TM];
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LB> bh[TN], bl[TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      wmma::load_matrix_sync(ah[i], A + tile_offset<MA>(16 * i, k, lda), lda);
      split_fragment(ah[i], al[i]);
    }
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      wmma::load_matrix_sync(bh[j], B + tile_offset<MB>(k, 16 * j, ldb), ldb);
      split_fragment(bh[j], bl[j]);
    }
    // Small terms first, so they are not lost against the large one.
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        if (split) {  // uniform over the warp
          wmma::mma_sync(acc.f[i][j], al[i], bh[j], acc.f[i][j]);
          wmma::mma_sync(acc.f[i][j], ah[i], bl[j], acc.f[i][j]);
        }
        wmma::mma_sync(acc.f[i][j], ah[i], bh[j], acc.f[i][j]);
      }
  }
}

template <int TM, int TN>
__device__ __forceinline__ void warp_tile_store(WarpTile<float, TM, TN>& acc, float* D, int ldd) {
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j)
      nvcuda::wmma::store_matrix_sync(D + 16 * i * ldd + 16 * j, acc.f[i][j], ldd, nvcuda::wmma::mem_row_major);
}
#endif

}  // namespace dynarch::cuda

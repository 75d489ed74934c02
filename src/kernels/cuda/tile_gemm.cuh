// A block's tile GEMM (first user: the SSD scan's tiled kernels): 256 threads
// (8 warps as 4 rows x 2 columns) accumulate a BM x BN output tile over K in
// steps of KT, each step staged through shared memory by the kernel's own
// loaders (which can scale on the way in: the SSD decays), then written out by
// the kernel's own epilogue. block.cuh's phases, tile_mma.cuh's warp products.
#pragma once
#include "kernels/cuda/block.cuh"
#include "kernels/cuda/tile_mma.cuh"

namespace dynarch::cuda {

// Kernels with one tile accumulator ask for 2 blocks an SM (__launch_bounds__(
// kTileThreads, 2): <= 128 registers), so one block's barrier stalls overlap another's work.
constexpr int kTileThreads = 256;
constexpr int kTileWarps = kTileThreads / 32;

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// fp32: 128 x 64 tiles, 32 x 32 per warp. fp64 (plain loops, tests): 64 x 64,
// so the shared tiles stay within the 48 KB of static shared memory.
template <class C>
struct TileGeom {
  static constexpr int TM = sizeof(C) == 4 ? 2 : 1, TN = 2;
  static constexpr int BM = 16 * TM * 4, BN = 16 * TN * 2, KT = 32;
  // Leading dimensions of the shared tiles, padded by 4 elements (16 bytes:
  // rows shift banks; WMMA wants multiples of 4 floats and 32-byte steps).
  static constexpr int kLdARow = KT + 4, kLdACol = BM + 4, kLdBRow = BN + 4, kLdBCol = KT + 4, kLdOut = BN + 4;
  static constexpr int kASize = BM * kLdARow > KT * kLdACol ? BM * kLdARow : KT * kLdACol;
  static constexpr int kBSize = KT * kLdBRow > BN * kLdBCol ? KT * kLdBRow : BN * kLdBCol;
  // A and B tiles while accumulating; the output tile afterwards (same memory).
  static constexpr int kSmem = kASize + kBSize > BM * kLdOut ? kASize + kBSize : BM * kLdOut;
  static_assert(BM <= kTileThreads && BM * BN % kTileThreads == 0, "row sums take one thread a row");
  using Acc = WarpTile<C, TM, TN>;
  template <Major M>
  static constexpr int lda() {
    return M == Major::row ? kLdARow : kLdACol;
  }
  template <Major M>
  static constexpr int ldb() {
    return M == Major::row ? kLdBRow : kLdBCol;
  }
  // The warp's first row and column in the block tile.
  __device__ static int row0(int w) { return (w / 2) * 16 * TM; }
  __device__ static int col0(int w) { return (w % 2) * 16 * TN; }
};

// Thread t's share of filling an R x K tile stored as M: element (r, c) =
// f(r, c). The storage's contiguous index runs over consecutive threads, so
// loaders that read global memory along it are coalesced.
template <Major M, int R, int K, class C, class F>
__device__ __forceinline__ void stage_tile(int t, C* dst, int ld, F&& f) {
#pragma unroll 4  // several global loads in flight before their shared stores
  for (int e = t; e < R * K; e += kTileThreads) {
    const int r = M == Major::row ? e / K : e % R, c = M == Major::row ? e % K : e / R;
    dst[tile_offset<M>(r, c, ld)] = f(r, c);
  }
}

template <class C>
using TileAcc = PerWarp<typename TileGeom<C>::Acc, kTileWarps>;

template <class C>
__device__ __forceinline__ void tile_zero(TileAcc<C>& acc) {
  warp_phase<kTileThreads>([&](int w) { warp_tile_zero(acc[w]); });
}

// acc += A B over k_tiles steps of KT: load(kt, r, k) gives A (BM x KT, stored
// as MA) and loadb(kt, k, n) gives B (KT x BN, stored as MB) of step kt, zero
// outside the data (ragged chunks, tile edges). split: warp_tile_mma's.
template <Major MA, Major MB, class C, class LoadA, class LoadB>
__device__ __forceinline__ void tile_accumulate(TileAcc<C>& acc, C* smem, int64_t k_tiles, LoadA&& loada,
                                                LoadB&& loadb, bool split = true) {
  using G = TileGeom<C>;
  C* As = smem;
  C* Bs = smem + G::kASize;
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    block_phase<kTileThreads>([&](int t) {
      stage_tile<MA, G::BM, G::KT>(t, As, G::template lda<MA>(), [&](int r, int k) { return loada(kt, r, k); });
      stage_tile<MB, G::KT, G::BN>(t, Bs, G::template ldb<MB>(), [&](int k, int n) { return loadb(kt, k, n); });
    });
    warp_phase<kTileThreads>([&](int w) {
      warp_tile_mma<MA, MB>(acc[w], As + tile_offset<MA>(G::row0(w), 0, G::template lda<MA>()), G::template lda<MA>(),
                            Bs + tile_offset<MB>(0, G::col0(w), G::template ldb<MB>()), G::template ldb<MB>(), G::KT,
                            split);
    });
  }
}

// The warps' accumulators into the shared output tile (row-major, kLdOut).
template <class C>
__device__ __forceinline__ void tile_to_smem(TileAcc<C>& acc, C* smem) {
  using G = TileGeom<C>;
  warp_phase<kTileThreads>(
      [&](int w) { warp_tile_store(acc[w], smem + G::row0(w) * G::kLdOut + G::col0(w), G::kLdOut); });
}

// f(r, n, v) for each element v (a reference into the shared tile) of the
// BM x BN output tile; element e = r BN + n goes to thread e % kTileThreads.
template <class C, class F>
__device__ __forceinline__ void tile_for_each(C* smem, F&& f) {
  using G = TileGeom<C>;
  block_phase<kTileThreads>([&](int t) {
    for (int e = t; e < G::BM * G::BN; e += kTileThreads)
      f(e / G::BN, e % G::BN, smem[(e / G::BN) * G::kLdOut + e % G::BN]);
  });
}

// The output tile through shared memory: store(r, n, value) for each of its
// BM x BN elements (the epilogue decides what lies outside the data).
template <class C, class Store>
__device__ __forceinline__ void tile_finish(TileAcc<C>& acc, C* smem, Store&& store) {
  tile_to_smem<C>(acc, smem);
  tile_for_each<C>(smem, [&](int r, int n, C& v) { store(r, n, v); });
}

// sums[r] += the sum of row r of the shared tile, for r < BM (one thread a row).
template <class C>
__device__ __forceinline__ void tile_add_row_sums(const C* smem, C* sums) {
  using G = TileGeom<C>;
  block_phase<kTileThreads>([&](int t) {
    if (t >= G::BM) return;
    C acc = 0;
    for (int n = 0; n < G::BN; ++n) acc += smem[t * G::kLdOut + n];
    sums[t] += acc;
  });
}

}  // namespace dynarch::cuda

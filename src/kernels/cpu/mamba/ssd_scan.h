// Sequential SSD scan kernels of the fused Mamba-2 core (mamba_core.cpp):
//   S_t = decay_t S_{t-1} + B_t (x) (delta_t x_t),   y_t = S_t C_t + D x_t
// per (row, head) with the P x N state held as [n][p] (vectorised over p).
// Internal to the fused kernels; the reference is ssd_sequential (mamba2.h).
#pragma once
#include <cstdint>

namespace dynarch::fused {

// Inputs are rows of xc (B, L, Cd): x at columns [h P, h P + P), B at
// [Di, Di + N), C at [Di + N, Di + 2N); delta, decay (B, L, H).
struct ScanShape {
  int64_t B, L, H, P, N, Cd, Di;
  int64_t nck;  // number of state checkpoints: ceil(L / kScanCheckpoint)
};
constexpr int64_t kScanCheckpoint = 32;

// y (B, L, Di); ckpt (B, H, nck, N, P) the state before every
// kScanCheckpoint-th step; init/fin (B, H, P, N) (init may be null = zeros).
template <class C>
void ssd_scan_forward(const C* xc, const C* delta, const C* decay, const C* D, const C* init, C* y, C* ckpt,
                      C* fin, const ScanShape& s);

// Reverse scan from the checkpoints. gy (B, L, Di) the gradient of y. Writes
// dxc's x columns and adds to its B/C columns (to bc_part (G, B, L, 2N) when
// the heads are split in G > 1 groups for parallelism); writes ddelta
// (B, L, H) and adds the per (row, head) gradients of D and A_log (B, H).
template <class C>
void ssd_scan_backward(const C* xc, const C* delta, const C* decay, const C* A_log, const C* D, const C* ckpt,
                       const C* gy, C* dxc, C* bc_part, int64_t G, C* ddelta, C* dD, C* dA_log, const ScanShape& s);

}  // namespace dynarch::fused

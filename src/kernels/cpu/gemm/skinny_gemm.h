// The two skinny GEMMs of the fused mHC input op (streams/mhc_input.cpp), per block of
// tokens while its rows are in cache:
//   project:    raw[M, K] = X[M, nD] · φᵀ          (φ: [K, nD], K = n² + 2n)
//   expand_add: dX[M, nD] += Gr[M, K] · φ
//   dphi_add:   dφ[K, nD] += Gr[M, K]ᵀ · X      (accumulated per thread over its blocks)
// BLAS runs these far below its peak (perf: it repacks φ for every 16-token
// block, and the packing took as long as the product); these AVX-512 kernels
// keep the M × K outputs (or an 8 × 32 tile of dX) in registers instead.
// fp32, K ≤ 32 (n ≤ 4), AVX-512 hosts; everything else uses BLAS.
#pragma once
#include <cstdint>
#include <vector>

namespace dynarch {

// φᵀ packed for skinny_project: [nD][Kp] with Kp = 16 or 32, zero-padded.
struct PackedPhi {
  std::vector<float> data;
  int64_t nD = 0, K = 0, Kp = 0;
};

// True when the kernels run for K outputs on this host (and the blas_skinny variant of
// core/forward_context.h is off; it is read on the calling thread).
bool skinny_gemm_available(int64_t K);
void pack_phi(const float* phi, int64_t K, int64_t nD, PackedPhi& out);
// Requires skinny_gemm_available(p.K).
void skinny_project(int64_t M, const float* X, const PackedPhi& p, float* raw);
void skinny_expand_add(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* phi, float* dX);
void skinny_dphi_add(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* X, float* dphi);

// Plain loops with the same meaning (the tests' reference).
void skinny_project_reference(int64_t M, int64_t nD, int64_t K, const float* X, const float* phi, float* raw);
void skinny_expand_add_reference(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* phi, float* dX);
void skinny_dphi_add_reference(int64_t M, int64_t nD, int64_t K, const float* Gr, const float* X, float* dphi);

}  // namespace dynarch

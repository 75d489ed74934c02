#include "kernels/cpu/streams/sinkhorn.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <vector>

#include "core/compat.h"
#include "core/error.h"
#include "core/forward_context.h"

#if DYNARCH_CUDA
#include "kernels/cuda/streams/sinkhorn_cuda.h"
#include "kernels/cuda/streams/sinkhorn_launch.h"  // kMaxSinkhornN
#endif

// Compiled WITHOUT -ffast-math: eps must be added exactly and exp must not be
// approximated. Vectorisation comes from the data layout instead: a block of
// kB tokens is transposed to [i][j][b], so every inner loop runs over the kB
// tokens of the block with a compile-time trip count.

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

namespace {

constexpr int kB = 16;  // tokens per block (2 AVX2 vectors of fp32)

// The block helpers are force-inlined into fwd_block / bwd_block, which are
// called with a literal n = 4 (the common case: loops unroll completely) or
// with the runtime n.
#define SK_INLINE inline __attribute__((always_inline))

void check_args(const at::Tensor& Z, const SinkhornOptions& o) {
  check(Z.dim() == 3 && Z.size(1) == Z.size(2) && Z.size(1) >= 1,
        "sinkhorn: Z must have shape (T, n, n) with n >= 1, got " + c10::str(Z.sizes()));
  check(Z.scalar_type() == at::kFloat || Z.scalar_type() == at::kDouble,
        std::string("sinkhorn: Z must be float32 or float64, got ") + c10::toString(Z.scalar_type()));
  check(o.iters >= 1, "sinkhorn: iters must be >= 1, got " + std::to_string(o.iters));
  check(std::isfinite(o.eps) && o.eps >= 0, "sinkhorn: eps must be finite and >= 0, got " + std::to_string(o.eps));
}

// Z rows t0 .. t0+nt of a contiguous (T, n, n) array -> block layout M[e][b];
// padding lanes get logits 0 (harmless, discarded).
template <class C>
SK_INLINE void load_block(const C* src, int64_t t0, int nt, int nn, C* M) {
  for (int b = 0; b < nt; ++b) {
    const C* s = src + (t0 + b) * nn;
    for (int e = 0; e < nn; ++e) M[e * kB + b] = s[e];
  }
  for (int b = nt; b < kB; ++b)
    for (int e = 0; e < nn; ++e) M[e * kB + b] = C(0);
}

template <class C>
SK_INLINE void store_block(const C* M, int64_t t0, int nt, int nn, C* dst) {
  for (int b = 0; b < nt; ++b) {
    C* d = dst + (t0 + b) * nn;
    for (int e = 0; e < nn; ++e) d[e] = M[e * kB + b];
  }
}

// M = exp(M - colmax(M)) in place; argmax (first index of the column max) if wanted.
template <class C>
SK_INLINE void exp_colmax(C* M, int n, int* argmax) {
  for (int j = 0; j < n; ++j) {
    C mx[kB];
    int am[kB];
    for (int b = 0; b < kB; ++b) mx[b] = M[j * kB + b], am[b] = 0;
    for (int i = 1; i < n; ++i) {
      const C* m = M + (i * n + j) * kB;
      for (int b = 0; b < kB; ++b)
        if (m[b] > mx[b]) mx[b] = m[b], am[b] = i;
    }
    for (int i = 0; i < n; ++i) {
      C* m = M + (i * n + j) * kB;
      for (int b = 0; b < kB; ++b) m[b] = std::exp(m[b] - mx[b]);
    }
    if (argmax)
      for (int b = 0; b < kB; ++b) argmax[j * kB + b] = am[b];
  }
}

// T_c: each column divided by (its sum + eps); inv[j] = 1 / (sum + eps) kept for backward.
template <class C>
SK_INLINE void col_step(C* M, int n, C eps, C* inv) {
  for (int j = 0; j < n; ++j) {
    C s[kB] = {};
    for (int i = 0; i < n; ++i)
      for (int b = 0; b < kB; ++b) s[b] += M[(i * n + j) * kB + b];
    C iv[kB];  // local: a pointer into inv could alias M and block vectorisation
    for (int b = 0; b < kB; ++b) iv[b] = C(1) / (s[b] + eps);
    std::copy(iv, iv + kB, inv + j * kB);
    for (int i = 0; i < n; ++i)
      for (int b = 0; b < kB; ++b) M[(i * n + j) * kB + b] *= iv[b];
  }
}

// T_r: each row divided by (its sum + eps).
template <class C>
SK_INLINE void row_step(C* M, int n, C eps, C* inv) {
  for (int i = 0; i < n; ++i) {
    C s[kB] = {};
    C* row = M + i * n * kB;
    for (int j = 0; j < n; ++j)
      for (int b = 0; b < kB; ++b) s[b] += row[j * kB + b];
    C iv[kB];
    for (int b = 0; b < kB; ++b) iv[b] = C(1) / (s[b] + eps);
    std::copy(iv, iv + kB, inv + i * kB);
    for (int j = 0; j < n; ++j)
      for (int b = 0; b < kB; ++b) row[j * kB + b] *= iv[b];
  }
}

template <class C>
SK_INLINE void add_scalar(C* M, int nn, C v) {
  for (int e = 0; e < nn * kB; ++e) M[e] += v;
}

// Step k (0-based) of the 2*iters normalisations: even = column, odd = row.
// In the V4 variant step 0 has no eps in its divisor and eps is added to its
// output afterwards (i.e. to the input of step 1).
template <class C>
SK_INLINE void step(int k, C* M, int n, C eps, bool v4, C* inv) {
  if (k % 2 == 0) {
    col_step(M, n, (k == 0 && v4) ? C(0) : eps, inv);
  } else {
    if (k == 1 && v4) add_scalar(M, n * n, eps);
    row_step(M, n, eps, inv);
  }
}

// Forward of the tokens t0 .. t0+nt into po; scratch M (n*n*kB), inv (n*kB).
template <class C>
SK_INLINE void fwd_block(const C* pz, C* po, int64_t t0, int nt, int n, int iters, C eps, bool v4, C* M, C* inv) {
  load_block(pz, t0, nt, n * n, M);
  exp_colmax<C>(M, n, nullptr);
  for (int k = 0; k < 2 * iters; ++k) step<C>(k, M, n, eps, v4, inv);
  store_block(M, t0, nt, n * n, po);
}

// Backward of one block: recompute every iterate (scratch: M0, S_k, inv_k,
// g, argmax), sweep back, write dZ into pgz.
template <class C>
SK_INLINE void bwd_block(const C* pz, const C* pg, C* pgz, int64_t t0, int nt, int n, int iters, C eps, bool v4,
                         C* buf, int* argmax) {
  const int nn = n * n, steps = 2 * iters;
  C* M0 = buf;
  C* S = M0 + nn * kB;
  C* inv = S + (size_t)steps * nn * kB;
  C* g = inv + (size_t)steps * n * kB;
  load_block(pz, t0, nt, nn, M0);
  exp_colmax<C>(M0, n, argmax);
  const C* prev = M0;
  for (int k = 0; k < steps; ++k) {
    C* cur = S + (size_t)k * nn * kB;
    std::copy(prev, prev + nn * kB, cur);
    step<C>(k, cur, n, eps, v4, inv + (size_t)k * n * kB);
    prev = cur;
  }
  // Reverse sweep. For the V4 step 0, S_0 is the softmax before + eps,
  // which is what its Jacobian needs; the + eps itself passes G through.
  load_block(pg, t0, nt, nn, g);
  for (int k = steps - 1; k >= 0; --k) {
    const C* Sk = S + (size_t)k * nn * kB;
    const C* iv = inv + (size_t)k * n * kB;
    if (k % 2 == 1) {  // row step: dY[i,j] = (G[i,j] - sum_l G[i,l] M[i,l]) / (r_i + eps)
      for (int i = 0; i < n; ++i) {
        C d[kB] = {};
        for (int j = 0; j < n; ++j)
          for (int b = 0; b < kB; ++b) d[b] += g[(i * n + j) * kB + b] * Sk[(i * n + j) * kB + b];
        C w[kB];  // local copy: lets the update below vectorise (no aliasing with g)
        std::copy(iv + i * kB, iv + (i + 1) * kB, w);
        for (int j = 0; j < n; ++j)
          for (int b = 0; b < kB; ++b) g[(i * n + j) * kB + b] = (g[(i * n + j) * kB + b] - d[b]) * w[b];
      }
    } else {  // column step: dX[i,j] = (G[i,j] - sum_l G[l,j] Y[l,j]) / (c_j + eps)
      for (int j = 0; j < n; ++j) {
        C d[kB] = {};
        for (int i = 0; i < n; ++i)
          for (int b = 0; b < kB; ++b) d[b] += g[(i * n + j) * kB + b] * Sk[(i * n + j) * kB + b];
        C w[kB];
        std::copy(iv + j * kB, iv + (j + 1) * kB, w);
        for (int i = 0; i < n; ++i)
          for (int b = 0; b < kB; ++b) g[(i * n + j) * kB + b] = (g[(i * n + j) * kB + b] - d[b]) * w[b];
      }
    }
  }
  // exp: dZ = dM0 * M0. The column max m_j = Z[argmax_j, j] receives
  // -sum_i dZ[i,j]: exactly zero in exact arithmetic when eps = 0 (a column
  // scale is undone by the first T_c), O(eps) otherwise, so this keeps the
  // gradient exact for eps > 0 too.
  for (int e = 0; e < nn * kB; ++e) g[e] *= M0[e];
  for (int j = 0; j < n; ++j) {
    C s[kB] = {};
    for (int i = 0; i < n; ++i)
      for (int b = 0; b < kB; ++b) s[b] += g[(i * n + j) * kB + b];
    for (int b = 0; b < kB; ++b) g[(argmax[j * kB + b] * n + j) * kB + b] -= s[b];
  }
  store_block(g, t0, nt, nn, pgz);
}

struct SinkhornFn : torch::autograd::Function<SinkhornFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& Z_in, int64_t iters, double eps, bool v4) {
    compat::AutocastScope fp32(false);
    auto Z = Z_in.contiguous();
    const int64_t T = Z.size(0);
    const int n = (int)Z.size(1);
    auto out = at::empty_like(Z);
    AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "sinkhorn_fwd", [&] {
      using C = scalar_t;
      const C* pz = Z.data_ptr<C>();
      C* po = out.data_ptr<C>();
      at::parallel_for(0, (T + kB - 1) / kB, 4, [&](int64_t b0, int64_t b1) {
        std::vector<C> buf((size_t)(n * n + n) * kB);
        C *M = buf.data(), *inv = M + n * n * kB;
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t t0 = blk * kB;
          const int nt = (int)std::min<int64_t>(kB, T - t0);
          if (n == 4)
            fwd_block<C>(pz, po, t0, nt, 4, (int)iters, (C)eps, v4, M, inv);
          else
            fwd_block<C>(pz, po, t0, nt, n, (int)iters, (C)eps, v4, M, inv);
        }
      });
    });
    ctx->save_for_backward({Z});
    ctx->saved_data["iters"] = iters;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["v4"] = v4;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    compat::AutocastScope fp32(false);
    auto Z = ctx->get_saved_variables()[0];
    const int iters = (int)ctx->saved_data["iters"].toInt();
    const double eps = ctx->saved_data["eps"].toDouble();
    const bool v4 = ctx->saved_data["v4"].toBool();
    auto G = grads[0].to(Z.scalar_type()).contiguous();
    const int64_t T = Z.size(0);
    const int n = (int)Z.size(1), nn = n * n, steps = 2 * iters;
    auto gZ = at::empty_like(Z);
    AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "sinkhorn_bwd", [&] {
      using C = scalar_t;
      const C *pz = Z.data_ptr<C>(), *pg = G.data_ptr<C>();
      C* pgz = gZ.data_ptr<C>();
      at::parallel_for(0, (T + kB - 1) / kB, 4, [&](int64_t b0, int64_t b1) {
        // Per block: M0, the output S_k of every step and its divisors inv_k, G.
        std::vector<C> buf((size_t)((1 + steps) * nn + steps * n + nn) * kB);
        std::vector<int> argmax((size_t)n * kB);
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t t0 = blk * kB;
          const int nt = (int)std::min<int64_t>(kB, T - t0);
          if (n == 4)
            bwd_block<C>(pz, pg, pgz, t0, nt, 4, iters, (C)eps, v4, buf.data(), argmax.data());
          else
            bwd_block<C>(pz, pg, pgz, t0, nt, n, iters, (C)eps, v4, buf.data(), argmax.data());
        }
      });
    });
    return {gZ, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

// n = 1: the only doubly stochastic 1x1 matrix is 1, and exp(Z - colmax) = 1
// for any Z, so both versions return exactly 1 (eps would otherwise leave
// 1 - O(eps)) with a zero gradient.
at::Tensor sinkhorn(const at::Tensor& Z, const SinkhornOptions& o) {
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda"); the binding checks its
  // arguments. Wider n than the kernel holds in registers: the reference.
  if (Z.is_cuda() && (Z.dim() < 1 || Z.size(-1) <= cuda::kMaxSinkhornN)) return cuda::sinkhorn(Z, o.iters, o.eps, o.eps_after_first);
#endif
  check_args(Z, o);
  if (Z.size(1) == 1) return Z * 0 + 1;
  if (!ForwardContext::cpu_kernels_apply(Z)) return sinkhorn_reference(Z.contiguous(), o);
  RECORD_USER_SCOPE("dynarch::sinkhorn");  // names the forward loops in profiles
  return SinkhornFn::apply(Z, (int64_t)o.iters, o.eps, o.eps_after_first);
}

at::Tensor sinkhorn_reference(const at::Tensor& Z, const SinkhornOptions& o) {
  check_args(Z, o);
  compat::AutocastScope fp32(false);
  if (Z.size(1) == 1) return Z * 0 + 1;
  // Per-column max (dim 1 runs over the destinations of one source column).
  auto M = (Z - Z.amax({1}, true)).exp();
  for (int s = 0; s < o.iters; ++s) {
    if (s == 0 && o.eps_after_first)
      M = M / M.sum({1}, true) + o.eps;
    else
      M = M / (M.sum({1}, true) + o.eps);
    M = M / (M.sum({2}, true) + o.eps);
  }
  return M;
}

}  // namespace dynarch

#include "kernels/cpu/gemm/bmm.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/forward_context.h"

extern "C" {
// Fortran BLAS (OpenBLAS through Debian's libblas.so.3 alternative).
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*);
}

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

template <class T>
void gemm_rowmajor(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb, T beta, T* C,
                   int ldc) {
  // Column-major BLAS computes C^T = op(B)^T op(A)^T.
  const char ca = ta ? 'T' : 'N', cb = tb ? 'T' : 'N';
  const T one = 1;
  if constexpr (std::is_same_v<T, float>)
    sgemm_(&cb, &ca, &N, &M, &K, &one, B, &ldb, A, &lda, &beta, C, &ldc);
  else
    dgemm_(&cb, &ca, &N, &M, &K, &one, B, &ldb, A, &lda, &beta, C, &ldc);
}
template void gemm_rowmajor<float>(bool, bool, int, int, int, const float*, int, const float*, int, float, float*, int);
template void gemm_rowmajor<double>(bool, bool, int, int, int, const double*, int, const double*, int, double, double*,
                                    int);

namespace {

// out[b] = op(A[b]) op(B[b]) for 3-D contiguous tensors.
at::Tensor batched(const at::Tensor& A, bool ta, const at::Tensor& B, bool tb) {
  const int64_t nb = A.size(0);
  const int M = ta ? A.size(2) : A.size(1), K = ta ? A.size(1) : A.size(2);
  const int N = tb ? B.size(1) : B.size(2);
  auto C = at::empty({nb, M, N}, A.options());
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "bmm_small", [&] {
    const scalar_t* pa = A.data_ptr<scalar_t>();
    const scalar_t* pb = B.data_ptr<scalar_t>();
    scalar_t* pc = C.data_ptr<scalar_t>();
    const int64_t sa = A.size(1) * A.size(2), sb = B.size(1) * B.size(2);
    // Inside the parallel region OpenBLAS (OpenMP build) runs single-threaded.
    at::parallel_for(0, nb, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        gemm_rowmajor<scalar_t>(ta, tb, M, N, K, pa + b * sa, (int)A.size(2), pb + b * sb, (int)B.size(2),
                                scalar_t(0), pc + b * (int64_t)M * N, N);
    });
  });
  return C;
}

struct BmmFn : torch::autograd::Function<BmmFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& A, const at::Tensor& B) {
    ctx->save_for_backward({A, B});
    return batched(A, false, B, false);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto s = ctx->get_saved_variables();
    auto G = g[0].contiguous();
    return {batched(G, false, s[1], true), batched(s[0], true, G, false)};  // G B^T, A^T G
  }
};

}  // namespace

at::Tensor bmm_small(const at::Tensor& A, const at::Tensor& B) {
  const auto t = A.scalar_type();
  if ((t != at::kFloat && t != at::kDouble) || B.scalar_type() != t || A.dim() < 3 || B.dim() < 3 ||
      !ForwardContext::cpu_kernels_apply(A))
    return at::matmul(A, B);
  auto ba = A.sizes().vec(), bb = B.sizes().vec();
  ba.resize(ba.size() - 2);
  bb.resize(bb.size() - 2);
  auto batch = at::infer_size(ba, bb);
  auto sa = batch, sb = batch;
  sa.insert(sa.end(), {A.size(-2), A.size(-1)});
  sb.insert(sb.end(), {B.size(-2), B.size(-1)});
  auto A3 = A.expand(sa).reshape({-1, A.size(-2), A.size(-1)}).contiguous();
  auto B3 = B.expand(sb).reshape({-1, B.size(-2), B.size(-1)}).contiguous();
  auto C = BmmFn::apply(A3, B3);
  auto so = batch;
  so.insert(so.end(), {A.size(-2), B.size(-1)});
  return C.view(so);
}

}  // namespace dynarch

#include "kernels/cuda/streams/sinkhorn_cuda.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/streams/sinkhorn_launch.h"

namespace dynarch::cuda {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct SinkhornCudaFn : torch::autograd::Function<SinkhornCudaFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& Z_in, int64_t iters, double eps, bool v4) {
    c10::cuda::CUDAGuard guard(Z_in.device());
    auto Z = Z_in.contiguous();
    const SinkhornArgs a{Z.size(0), (int)Z.size(1), (int)iters, eps, v4};
    auto out = at::empty_like(Z);
    AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "sinkhorn_cuda_fwd", [&] {
      check_launch(sinkhorn_forward<scalar_t>(Z.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), a, stream()),
                   "sinkhorn forward");
    });
    ctx->save_for_backward({Z});
    ctx->saved_data["iters"] = iters;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["v4"] = v4;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto Z = ctx->get_saved_variables()[0];
    c10::cuda::CUDAGuard guard(Z.device());
    const SinkhornArgs a{Z.size(0), (int)Z.size(1), (int)ctx->saved_data["iters"].toInt(),
                         ctx->saved_data["eps"].toDouble(), ctx->saved_data["v4"].toBool()};
    auto G = grads[0].to(Z.scalar_type()).contiguous();
    auto gZ = at::empty_like(Z);
    auto scratch = at::empty({sinkhorn_scratch_elems(a)}, Z.options());
    AT_DISPATCH_FLOATING_TYPES(Z.scalar_type(), "sinkhorn_cuda_bwd", [&] {
      using C = scalar_t;
      check_launch(
          sinkhorn_backward<C>(Z.data_ptr<C>(), G.data_ptr<C>(), gZ.data_ptr<C>(), scratch.data_ptr<C>(), a, stream()),
          "sinkhorn backward");
    });
    return {gZ, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor sinkhorn(const at::Tensor& Z, int64_t iters, double eps, bool v4) {
  check_tensor("sinkhorn", "Z", Z, Z.device(), {at::kFloat, at::kDouble});
  check(Z.dim() == 3 && Z.size(1) == Z.size(2) && Z.size(1) >= 1 && Z.size(1) <= kMaxSinkhornN,
        "sinkhorn: Z must have shape (T, n, n) with 1 <= n <= " + std::to_string(kMaxSinkhornN) + " on CUDA, got " +
            c10::str(Z.sizes()));
  check(iters >= 1, "sinkhorn: iters must be >= 1, got " + std::to_string(iters));
  check(std::isfinite(eps) && eps >= 0, "sinkhorn: eps must be finite and >= 0, got " + std::to_string(eps));
  if (Z.size(1) == 1) return Z * 0 + 1;  // as the CPU op: exactly 1, zero gradient
  return SinkhornCudaFn::apply(Z, iters, eps, v4);
}

}  // namespace dynarch::cuda

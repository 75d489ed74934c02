#include "kernels/cuda/chunk/ema_scan_cuda.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/chunk/ema_scan_launch.h"

namespace dynarch::cuda {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct EmaCudaFn : torch::autograd::Function<EmaCudaFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& z_in, const at::Tensor& P_in,
                            const at::Tensor& h0_in) {
    c10::cuda::CUDAGuard guard(z_in.device());
    const auto ct = z_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    auto z = z_in.to(ct).contiguous(), P = P_in.to(ct).contiguous(), h0 = h0_in.to(ct).contiguous();
    const int64_t B = z.size(0), M = z.size(1), D = z.size(2);
    auto out = at::empty_like(z);
    AT_DISPATCH_FLOATING_TYPES(ct, "ema_scan_cuda_fwd", [&] {
      check_launch(ema_scan_forward<scalar_t>(z.data_ptr<scalar_t>(), P.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(),
                                              out.data_ptr<scalar_t>(), B, M, D, stream()),
                   "ema_scan forward");
    });
    ctx->save_for_backward({z, P, h0, out});
    ctx->saved_data["in_dtype"] = (int64_t)z_in.scalar_type();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto s = ctx->get_saved_variables();
    auto z = s[0], P = s[1], h0 = s[2], out = s[3];
    c10::cuda::CUDAGuard guard(z.device());
    auto g = grads[0].to(z.scalar_type()).contiguous();
    const int64_t B = z.size(0), M = z.size(1), D = z.size(2);
    auto gz = at::empty_like(z), gPd = at::empty_like(z), gh0 = at::empty_like(h0);
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ema_scan_cuda_bwd", [&] {
      using C = scalar_t;
      check_launch(
          ema_scan_backward<C>(z.data_ptr<C>(), P.data_ptr<C>(), h0.data_ptr<C>(), out.data_ptr<C>(), g.data_ptr<C>(),
                               gz.data_ptr<C>(), gPd.data_ptr<C>(), gh0.data_ptr<C>(), B, M, D, stream()),
          "ema_scan backward");
    });
    auto in_dtype = (at::ScalarType)ctx->saved_data["in_dtype"].toInt();
    return {gz.to(in_dtype), gPd.sum(-1), gh0};
  }
};

}  // namespace

at::Tensor ema_scan(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0) {
  const auto dev = z.device();
  check_tensor("ema_scan", "z", z, dev, {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble});
  check(z.dim() == 3, "ema_scan: z must have shape (B, M, D), got " + c10::str(z.sizes()));
  check_tensor("ema_scan", "P", P, dev, {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble});
  check_shape("ema_scan", "P", P, {z.size(0), z.size(1)});
  check_tensor("ema_scan", "h0", h0, dev, {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble});
  check_shape("ema_scan", "h0", h0, {z.size(0), z.size(2)});
  return EmaCudaFn::apply(z, P, h0);
}

}  // namespace dynarch::cuda

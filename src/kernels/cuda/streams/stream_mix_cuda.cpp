#include "kernels/cuda/streams/stream_mix_cuda.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/streams/stream_mix_launch.h"

namespace dynarch::cuda {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

MixShape shape_of(const at::Tensor& X) { return {X.size(0), X.size(1), X.size(2)}; }

template <class C>
C* opt_ptr(at::Tensor& t) {
  return t.defined() ? t.data_ptr<C>() : nullptr;
}

struct PreMixCudaFn : torch::autograd::Function<PreMixCudaFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& pre_in) {
    c10::cuda::CUDAGuard guard(X_in.device());
    auto X = X_in.contiguous(), pre = pre_in.contiguous();
    const MixShape s = shape_of(X);
    auto u = at::empty({s.T, s.D}, X.options());
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "hc_pre_mix_cuda_fwd", [&] {
      check_launch(pre_mix_forward<scalar_t>(X.data_ptr<scalar_t>(), pre.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(),
                                             s, stream()),
                   "hc_pre_mix forward");
    });
    ctx->save_for_backward({X, pre});
    return u;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto sv = ctx->get_saved_variables();
    auto X = sv[0], pre = sv[1];
    c10::cuda::CUDAGuard guard(X.device());
    const MixShape s = shape_of(X);
    auto G = grads[0].to(X.scalar_type()).contiguous();
    at::Tensor gX = ctx->needs_input_grad(0) ? at::empty_like(X) : at::Tensor();
    at::Tensor gp = ctx->needs_input_grad(1) ? at::empty_like(pre) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "hc_pre_mix_cuda_bwd", [&] {
      using C = scalar_t;
      check_launch(pre_mix_backward<C>(X.data_ptr<C>(), pre.data_ptr<C>(), G.data_ptr<C>(), opt_ptr<C>(gX),
                                       opt_ptr<C>(gp), s, stream()),
                   "hc_pre_mix backward");
    });
    return {gX, gp};
  }
};

struct PostResCudaFn : torch::autograd::Function<PostResCudaFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& X_in, const at::Tensor& R_in,
                            const at::Tensor& post_in, const at::Tensor& y_in) {
    c10::cuda::CUDAGuard guard(X_in.device());
    auto X = X_in.contiguous(), R = R_in.contiguous(), post = post_in.contiguous(), y = y_in.contiguous();
    const MixShape s = shape_of(X);
    auto out = at::empty_like(X);
    AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "hc_post_res_cuda_fwd", [&] {
      using C = scalar_t;
      check_launch(post_res_forward<C>(X.data_ptr<C>(), R.data_ptr<C>(), post.data_ptr<C>(), y.data_ptr<C>(),
                                       out.data_ptr<C>(), s, stream()),
                   "hc_post_res forward");
    });
    ctx->save_for_backward({X, R, post, y});
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto sv = ctx->get_saved_variables();
    c10::cuda::CUDAGuard guard(sv[0].device());
    const MixShape s = shape_of(sv[0]);
    auto G = grads[0].to(sv[0].scalar_type()).contiguous();
    at::Tensor g[4];
    for (int i = 0; i < 4; ++i)
      if (ctx->needs_input_grad(i)) g[i] = at::empty_like(sv[i]);
    AT_DISPATCH_FLOATING_TYPES(sv[0].scalar_type(), "hc_post_res_cuda_bwd", [&] {
      using C = scalar_t;
      check_launch(post_res_backward<C>(sv[0].data_ptr<C>(), sv[1].data_ptr<C>(), sv[2].data_ptr<C>(),
                                        sv[3].data_ptr<C>(), G.data_ptr<C>(), opt_ptr<C>(g[0]), opt_ptr<C>(g[1]),
                                        opt_ptr<C>(g[2]), opt_ptr<C>(g[3]), s, stream()),
                   "hc_post_res backward");
    });
    return {g[0], g[1], g[2], g[3]};
  }
};

// X (T, n, D) fp32/fp64 on a CUDA device; each other tensor has `shape` and X's dtype and device.
void check_like(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef shape, const at::Tensor& X) {
  check_tensor(op, name, t, X.device(), {X.scalar_type()});
  check_shape(op, name, t, shape);
}

void check_state(const char* op, const at::Tensor& X) {
  check_tensor(op, "X", X, X.device(), {at::kFloat, at::kDouble});
  check(X.dim() == 3 && X.size(1) >= 1,
        std::string(op) + ": X must have shape (T, n, D) with n >= 1, got " + c10::str(X.sizes()));
}

}  // namespace

at::Tensor hc_pre_mix(const at::Tensor& X, const at::Tensor& pre) {
  check_state("hc_pre_mix", X);
  check_like("hc_pre_mix", "pre", pre, {X.size(0), X.size(1)}, X);
  return PreMixCudaFn::apply(X, pre);
}

at::Tensor hc_post_res(const at::Tensor& X, const at::Tensor& R, const at::Tensor& post, const at::Tensor& y) {
  check_state("hc_post_res", X);
  const int64_t T = X.size(0), n = X.size(1), D = X.size(2);
  check_like("hc_post_res", "R", R, {T, n, n}, X);
  check_like("hc_post_res", "post", post, {T, n}, X);
  check_like("hc_post_res", "y", y, {T, D}, X);
  return PostResCudaFn::apply(X, R, post, y);
}

}  // namespace dynarch::cuda

#include "kernels/cuda/mamba/causal_conv_cuda.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/mamba/causal_conv_launch.h"

namespace dynarch::cuda {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

ConvShape shape_of(const at::Tensor& x, int64_t K) {
  return {x.size(0), x.size(1), x.size(2), K, x.stride(0), x.stride(1)};
}

// Calls f(T*, C*) with the storage type of x and the compute type.
template <class F>
void dispatch(const at::Tensor& x, F f) {
  if (x.scalar_type() == at::kDouble)
    f((double*)nullptr, (double*)nullptr);
  else if (x.scalar_type() == at::kBFloat16)
    f((__nv_bfloat16*)nullptr, (float*)nullptr);
  else
    f((float*)nullptr, (float*)nullptr);
}

template <class P>
P* ptr(const at::Tensor& t) {
  return t.numel() ? reinterpret_cast<P*>(t.data_ptr()) : nullptr;
}

struct ConvCudaFn : torch::autograd::Function<ConvCudaFn> {
  // init_in, st: numel 0 for none; st (B, L) contiguous.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            const at::Tensor& init_in, const at::Tensor& st) {
    c10::cuda::CUDAGuard guard(x.device());
    const auto ct = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    const int64_t K = weight.size(-1);
    auto w = weight.reshape({weight.size(0), K}).to(ct).contiguous(), b = bias.to(ct).contiguous();
    auto init = init_in.to(ct).contiguous();
    const ConvShape s = shape_of(x, K);
    auto y = at::empty({s.B, s.L, s.C}, x.options().dtype(ct));
    dispatch(x, [&](auto* T0, auto* C0) {
      using T = std::remove_pointer_t<decltype(T0)>;
      using C = std::remove_pointer_t<decltype(C0)>;
      check_launch(causal_conv_silu_forward<T, C>(ptr<const T>(x), ptr<const C>(w), ptr<const C>(b), ptr<const C>(init),
                                                  ptr<const int64_t>(st), ptr<C>(y), s, stream()),
                   "causal_conv1d_silu forward");
    });
    ctx->save_for_backward({x, w, b, init, st});
    ctx->saved_data["w_sizes"] = weight.sizes().vec();
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto sv = ctx->get_saved_variables();
    auto x = sv[0], w = sv[1], b = sv[2], init = sv[3], st = sv[4];
    c10::cuda::CUDAGuard guard(x.device());
    const ConvShape s = shape_of(x, w.size(1));
    auto gy = grads[0].to(w.scalar_type()).contiguous();
    auto dpre = at::empty_like(gy);
    auto gx = at::empty({s.B, s.L, s.C}, x.options());
    auto part = at::zeros({conv_weight_segments(s), s.K + 1, s.C}, w.options());
    dispatch(x, [&](auto* T0, auto* C0) {
      using T = std::remove_pointer_t<decltype(T0)>;
      using C = std::remove_pointer_t<decltype(C0)>;
      check_launch(
          causal_conv_silu_backward<T, C>(ptr<const T>(x), ptr<const C>(w), ptr<const C>(b), ptr<const C>(init),
                                          ptr<const int64_t>(st), ptr<const C>(gy), ptr<C>(dpre), ptr<T>(gx),
                                          ptr<C>(part), s, stream()),
          "causal_conv1d_silu backward");
    });
    auto gsum = part.sum(0);  // (K + 1, C)
    auto gw = gsum.narrow(0, 0, s.K).t().contiguous().view(ctx->saved_data["w_sizes"].toIntVector());
    return {gx, gw, gsum.select(0, s.K).contiguous(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor causal_conv1d_silu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& init, const at::Tensor& seq_start) {
  const char* op = "causal_conv1d_silu";
  const auto dev = x.device();
  check_tensor(op, "x", x, dev, {at::kFloat, at::kBFloat16, at::kDouble});
  check(x.dim() == 3 && x.stride(2) == 1, std::string(op) + ": x must be (B, L, C) with unit channel stride, got " +
                                              c10::str(x.sizes()) + " strides " + c10::str(x.strides()));
  const int64_t C = x.size(2), K = weight.size(-1);
  check_tensor(op, "weight", weight, dev, {at::kFloat, at::kBFloat16, at::kDouble});
  check_shape(op, "weight", weight, {C, 1, K});
  check(K >= 1 && K <= kMaxConvWidth,
        std::string(op) + ": kernel width must be 1.." + std::to_string(kMaxConvWidth) + ", got " + std::to_string(K));
  check_tensor(op, "bias", bias, dev, {at::kFloat, at::kBFloat16, at::kDouble});
  check_shape(op, "bias", bias, {C});
  if (init.numel()) {
    check_tensor(op, "init", init, dev, {at::kFloat, at::kBFloat16, at::kDouble});
    check_shape(op, "init", init, {x.size(0), K - 1, C});
  }
  const int64_t B = x.size(0), L = x.size(1);
  at::Tensor st = at::empty({0}, x.options().dtype(at::kLong));
  if (seq_start.defined()) {
    check_tensor(op, "seq_start", seq_start, dev, {at::kLong});
    check((seq_start.dim() == 1 && seq_start.size(0) == L) || seq_start.sizes() == at::IntArrayRef{B, L},
          std::string(op) + ": seq_start must have shape (" + std::to_string(L) + ") or (" + std::to_string(B) +
              ", " + std::to_string(L) + "), got " + c10::str(seq_start.sizes()));
    if (seq_start.numel()) st = (seq_start.dim() == 1 ? seq_start.unsqueeze(0).expand({B, L}) : seq_start).contiguous();
  }
  return ConvCudaFn::apply(x, weight, bias, init.defined() ? init : at::empty({0}, x.options()), st);
}

}  // namespace dynarch::cuda

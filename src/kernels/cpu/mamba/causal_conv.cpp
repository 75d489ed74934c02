#include "kernels/cpu/mamba/causal_conv.h"

#include "core/error.h"

#if DYNARCH_CUDA
#include "kernels/cuda/mamba/causal_conv_cuda.h"
#include "kernels/cuda/mamba/causal_conv_launch.h"  // kMaxConvWidth
#endif

namespace dynarch {

at::Tensor causal_conv1d_silu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& init) {
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda").
  // Wider than the kernel's unrolled taps: the reference.
  if (x.is_cuda() && (weight.dim() != 3 || weight.size(2) <= cuda::kMaxConvWidth))
    return cuda::causal_conv1d_silu(x, weight, bias, init);
#endif
  return causal_conv1d_silu_reference(x, weight, bias, init);
}

at::Tensor causal_conv1d_silu_reference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                        const at::Tensor& init) {
  check(x.dim() == 3 && weight.dim() == 3 && weight.size(0) == x.size(2) && weight.size(1) == 1,
        "causal_conv1d_silu: x must be (B, L, C) and weight (C, 1, K), got " + c10::str(x.sizes()) + " and " +
            c10::str(weight.sizes()));
  const int64_t B = x.size(0), C = x.size(2), K = weight.size(2);
  const auto ct = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto left =
      init.defined() && init.numel() ? init.to(ct).transpose(1, 2) : at::zeros({B, C, K - 1}, x.options().dtype(ct));
  auto xpad = at::cat({left, x.to(ct).transpose(1, 2)}, 2);  // column t + K - 1 holds position t
  return at::silu(at::conv1d(xpad, weight.to(ct), bias.to(ct), at::IntArrayRef{1}, at::IntArrayRef{0},
                             at::IntArrayRef{1}, C))
      .transpose(1, 2);
}

}  // namespace dynarch

#include "kernels/cpu/mamba/causal_conv.h"

#include "core/error.h"
#include "kernels/cpu/mamba/seq_starts.h"

#if DYNARCH_CUDA
#include "kernels/cuda/mamba/causal_conv_cuda.h"
#include "kernels/cuda/mamba/causal_conv_launch.h"  // kMaxConvWidth
#endif

namespace dynarch {

at::Tensor causal_conv1d_silu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& init, const at::Tensor& seq_start) {
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda").
  // Wider than the kernel's unrolled taps: the reference.
  if (x.is_cuda() && (weight.dim() != 3 || weight.size(2) <= cuda::kMaxConvWidth))
    return cuda::causal_conv1d_silu(x, weight, bias, init, seq_start);
#endif
  return causal_conv1d_silu_reference(x, weight, bias, init, seq_start);
}

at::Tensor causal_conv1d_silu_reference(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                        const at::Tensor& init, const at::Tensor& seq_start) {
  check(x.dim() == 3 && weight.dim() == 3 && weight.size(0) == x.size(2) && weight.size(1) == 1,
        "causal_conv1d_silu: x must be (B, L, C) and weight (C, 1, K), got " + c10::str(x.sizes()) + " and " +
            c10::str(weight.sizes()));
  const int64_t B = x.size(0), C = x.size(2), K = weight.size(2);
  const auto ct = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto left =
      init.defined() && init.numel() ? init.to(ct).transpose(1, 2) : at::zeros({B, C, K - 1}, x.options().dtype(ct));
  auto xpad = at::cat({left, x.to(ct).transpose(1, 2)}, 2);  // column t + K - 1 holds position t
  if (seq_start.defined()) {
    // Tap k of output t reads position t - K + 1 + k: kept iff that is in t's
    // sequence, or t's sequence is the first (its rows before 0 are init's).
    const int64_t L = x.size(1);
    auto st = seq_start_rows("causal_conv1d_silu", seq_start, B, L, x.device()).unsqueeze(1);  // (B, 1, L)
    auto pos = at::arange(L, st.options()).view({1, 1, L});
    auto pre = bias.to(ct).view({1, C, 1}).expand({B, C, L});
    for (int64_t k = 0; k < K; ++k) {
      auto keep = ((pos - (K - 1 - k) >= st) | (st == 0)).to(ct);
      pre = pre + weight.to(ct).select(2, k).view({1, C, 1}) * xpad.narrow(2, k, L) * keep;
    }
    return at::silu(pre).transpose(1, 2);
  }
  return at::silu(at::conv1d(xpad, weight.to(ct), bias.to(ct), at::IntArrayRef{1}, at::IntArrayRef{0},
                             at::IntArrayRef{1}, C))
      .transpose(1, 2);
}

}  // namespace dynarch

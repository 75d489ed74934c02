#include "kernels/cpu/chunk/ema_scan.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "core/forward_context.h"
#if DYNARCH_CUDA
#include "kernels/cuda/chunk/ema_scan_cuda.h"
#endif

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

namespace {

template <class T>
void ema_forward_kernel(const T* z, const T* P, const T* h0, T* out, int64_t B, int64_t M, int64_t D) {
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T* prev = h0 ? h0 + b * D : nullptr;
      for (int64_t j = 0; j < M; ++j) {
        const T p = P[b * M + j];
        const T* zj = z + (b * M + j) * D;
        T* oj = out + (b * M + j) * D;
        for (int64_t d = 0; d < D; ++d) oj[d] = p * zj[d] + (prev ? (T(1) - p) * prev[d] : T(0));
        prev = oj;
      }
    }
  });
}

template <class T>
void ema_backward_kernel(const T* z, const T* P, const T* h0, const T* out, const T* g, T* gz, T* gP, T* gh0,
                         int64_t B, int64_t M, int64_t D) {
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> delta(D);
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(delta.begin(), delta.end(), T(0));
      for (int64_t j = M - 1; j >= 0; --j) {
        const T* gj = g + (b * M + j) * D;
        // delta_j = g_j + (1 - P_{j+1}) delta_{j+1}
        const T carry = j + 1 < M ? T(1) - P[b * M + j + 1] : T(0);
        for (int64_t d = 0; d < D; ++d) delta[d] = gj[d] + carry * delta[d];
        const T p = P[b * M + j];
        const T* zj = z + (b * M + j) * D;
        const T* prev = j > 0 ? out + (b * M + j - 1) * D : (h0 ? h0 + b * D : nullptr);
        T* gzj = gz + (b * M + j) * D;
        T dp = 0;
        for (int64_t d = 0; d < D; ++d) {
          gzj[d] = p * delta[d];
          dp += delta[d] * (zj[d] - (prev ? prev[d] : T(0)));
        }
        gP[b * M + j] = dp;
      }
      if (gh0) {
        const T p0 = M > 0 ? P[b * M] : T(1);
        for (int64_t d = 0; d < D; ++d) gh0[b * D + d] = (T(1) - p0) * delta[d];
      }
    }
  });
}

struct EmaFn : torch::autograd::Function<EmaFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& z_in, const at::Tensor& P_in,
                            const at::Tensor& h0_in) {
    auto ct = z_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    auto z = z_in.to(ct).contiguous(), P = P_in.to(ct).contiguous();
    auto h0 = h0_in.defined() ? h0_in.to(ct).contiguous() : at::Tensor();
    const int64_t B = z.size(0), M = z.size(1), D = z.size(2);
    auto out = at::empty_like(z);
    AT_DISPATCH_FLOATING_TYPES(ct, "ema_forward", [&] {
      ema_forward_kernel<scalar_t>(z.data_ptr<scalar_t>(), P.data_ptr<scalar_t>(),
                                   h0.defined() ? h0.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(), B, M, D);
    });
    ctx->save_for_backward({z, P, h0.defined() ? h0 : at::Tensor(), out});
    ctx->saved_data["has_h0"] = h0.defined();
    ctx->saved_data["in_dtype"] = (int64_t)z_in.scalar_type();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto s = ctx->get_saved_variables();
    auto z = s[0], P = s[1], h0 = s[2], out = s[3];
    const bool has_h0 = ctx->saved_data["has_h0"].toBool();
    auto g = grads[0].to(z.scalar_type()).contiguous();
    const int64_t B = z.size(0), M = z.size(1), D = z.size(2);
    auto gz = at::empty_like(z), gP = at::empty_like(P);
    auto gh0 = has_h0 ? at::empty_like(h0) : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "ema_backward", [&] {
      ema_backward_kernel<scalar_t>(z.data_ptr<scalar_t>(), P.data_ptr<scalar_t>(),
                                    has_h0 ? h0.data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>(),
                                    g.data_ptr<scalar_t>(), gz.data_ptr<scalar_t>(), gP.data_ptr<scalar_t>(),
                                    has_h0 ? gh0.data_ptr<scalar_t>() : nullptr, B, M, D);
    });
    auto in_dtype = (at::ScalarType)ctx->saved_data["in_dtype"].toInt();
    return {gz.to(in_dtype), gP, gh0};
  }
};

}  // namespace

at::Tensor ema_scan(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0) {
  // Custom functions in 1.13 cannot take undefined inputs: a zero h0 is the same recurrence.
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda"): CUDA tensors run the CUDA kernel.
  if (z.is_cuda()) return cuda::ema_scan(z, P, h0.defined() ? h0 : at::zeros({z.size(0), z.size(2)}, z.options()));
#endif
  if (!ForwardContext::cpu_kernels_apply(z)) return ema_scan_reference(z, P, h0);
  RECORD_USER_SCOPE("dynarch::ema_scan");  // names the forward loops in profiles
  return EmaFn::apply(z, P, h0.defined() ? h0 : at::zeros({z.size(0), z.size(2)}, z.options()));
}

at::Tensor ema_scan_reference(const at::Tensor& z, const at::Tensor& P, const at::Tensor& h0) {
  std::vector<at::Tensor> outs;
  auto prev = h0.defined() ? h0 : at::zeros({z.size(0), z.size(2)}, z.options());
  for (int64_t j = 0; j < z.size(1); ++j) {
    auto p = P.select(1, j).unsqueeze(-1);
    prev = p * z.select(1, j) + (1 - p) * prev;
    outs.push_back(prev);
  }
  return at::stack(outs, 1);
}

}  // namespace dynarch

#include "model/hnet/chunk.h"

#include <torch/torch.h>

#include "kernels/cpu/chunk/ema_scan.h"

namespace dynarch {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

Chunked downsample(const at::Tensor& x, const at::Tensor& b) {
  const int64_t B = x.size(0), L = x.size(1);
  auto counts = b.sum(1);  // (B)
  const int64_t M = std::max<int64_t>(counts.max().item<int64_t>(), 1);
  // Key t + L (1 - b): boundary rows first, each group in time order.
  auto key = at::arange(L, b.options().dtype(at::kLong)).unsqueeze(0) + L * (1 - b.to(at::kLong));
  auto index = std::get<1>(key.sort(1)).narrow(1, 0, M);
  auto xs = x.gather(1, index.unsqueeze(-1).expand({B, M, x.size(2)}));
  auto mask = at::arange(M, b.options().dtype(at::kLong)).unsqueeze(0) < counts.unsqueeze(1);
  return {xs, mask, index};
}

namespace {

struct SteFn : torch::autograd::Function<SteFn> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& c) { return at::ones_like(c); }
  static tensor_list backward(AutogradContext*, tensor_list g) { return {g[0]}; }
};

}  // namespace

at::Tensor dechunk(const at::Tensor& zhat, const at::Tensor& p_chunks, const at::Tensor& b, const at::Tensor& h0) {
  auto P = at::clamp(p_chunks, 1e-4, 1 - 1e-4);
  auto zbar = ema_scan(zhat, P, h0);
  auto k = b.to(at::kLong).cumsum(1) - 1;  // (B, L)
  const int64_t B = zbar.size(0), D = zbar.size(2);
  if (h0.defined()) {
    zbar = at::cat({h0.to(zbar.scalar_type()).unsqueeze(1), zbar}, 1);
    k = k + 1;
  } else {
    k = k.clamp_min(0);  // cannot happen for fresh sequences: p_0 = 1 makes b_0 = 1
  }
  return zbar.gather(1, k.unsqueeze(-1).expand({B, k.size(1), D}));
}

at::Tensor ste_ones(const at::Tensor& c) { return SteFn::apply(c); }

}  // namespace dynarch

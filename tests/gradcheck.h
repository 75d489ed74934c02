// fp64 finite-difference gradient check for tests (torch::autograd has no
// C++ gradcheck): compares autograd's gradient of sum(f(x) * w) for a fixed
// random w with central differences, element by element.
#pragma once
#include <torch/torch.h>

#include <functional>

namespace dynarch::gradtest {

inline double gradcheck_max_error(const std::function<at::Tensor(const std::vector<at::Tensor>&)>& f,
                                  std::vector<at::Tensor> inputs, double eps = 1e-6) {
  for (auto& x : inputs) x = x.detach().to(at::kDouble).clone().requires_grad_(true);
  auto out = f(inputs);
  auto w = torch::randn_like(out);
  auto grads = torch::autograd::grad({(out * w).sum()}, inputs);
  double worst = 0;
  torch::NoGradGuard ng;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto flat = inputs[i].view({-1});
    auto g = grads[i].reshape({-1});
    for (int64_t k = 0; k < flat.numel(); ++k) {
      double orig = flat[k].item<double>();
      flat[k] = orig + eps;
      double up = (f(inputs) * w).sum().item<double>();
      flat[k] = orig - eps;
      double dn = (f(inputs) * w).sum().item<double>();
      flat[k] = orig;
      double num = (up - dn) / (2 * eps), ana = g[k].item<double>();
      worst = std::max(worst, std::abs(num - ana) / std::max(1.0, std::abs(num)));
    }
  }
  return worst;
}

}  // namespace dynarch::gradtest

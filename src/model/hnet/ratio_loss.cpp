#include "model/hnet/ratio_loss.h"

#include <torch/torch.h>

namespace dynarch {

RatioStats ratio_loss(const at::Tensor& p, const at::Tensor& b, const at::Tensor& mask, double N) {
  auto m = mask.defined() ? mask.to(p.scalar_type()) : at::ones_like(p);
  auto n = m.sum();
  auto F = (b.to(p.scalar_type()) * m).sum() / n;  // no gradient (b is hard)
  auto G = (p * m).sum() / n;
  auto loss = N / (N - 1.0) * ((N - 1.0) * F * G + (1.0 - F) * (1.0 - G));
  return {loss, F.detach(), G.detach()};
}

RatioStats ratio_loss(const at::Tensor& p, const at::Tensor& b, const at::Tensor& mask, double N,
                      const SumOverRanks& sum, int world) {
  auto m = mask.defined() ? mask.to(p.scalar_type()) : at::ones_like(p);
  auto sp = (p * m).sum();
  auto s = sum({(b.to(p.scalar_type()) * m).sum().item<double>(), m.sum().item<double>(), sp.item<double>()});
  const double F = s[0] / s[1];
  auto G = sp * ((double)world / s[1]);  // this rank's share of the global G, times world
  auto loss = N / (N - 1.0) * ((N - 1.0) * F * G + (1.0 - F) * (1.0 - G));
  auto host = [](double v) { return at::scalar_tensor(v, at::kDouble); };
  return {loss, host(F), host(s[2] / s[1])};
}

}  // namespace dynarch

#include "model/config/stage_defaults.h"

#include <cmath>

namespace dynarch {

std::vector<double> default_ratio_targets(int S) {
  if (S == 1) return {6.0};
  return std::vector<double>(S, 3.0);
}

std::vector<double> stage_lr_multipliers(const ModelConfig& c, const std::vector<double>& N) {
  const int S = c.num_stages();
  std::vector<double> out;
  double prod = 1.0;
  for (int s = 0; s <= S; ++s) {
    out.push_back(std::sqrt(4.6 * c.d_model[S] / (c.d_model[s] * prod)));
    if (s < S) prod *= N.at(s);
  }
  return out;
}

}  // namespace dynarch

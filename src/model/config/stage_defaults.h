// Per-stage training defaults that follow from a model config alone (hnet.md §9).
// Kept apart from model/lm.h so that option checking needs no model code.
#pragma once
#include <vector>

#include "model/config/config.h"

namespace dynarch {

// hnet.md §9: lambda_s = sqrt(N_GPT * D_S / (D_s * prod_{i<s} N_i)), N_GPT = 4.6.
std::vector<double> stage_lr_multipliers(const ModelConfig& c, const std::vector<double>& ratios);
// Default compression targets: 1 stage -> 6; 2 stages -> 3, 3; S stages -> 3 each.
std::vector<double> default_ratio_targets(int num_stages);

}  // namespace dynarch

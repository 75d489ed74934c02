// `dynarch stability`: the HC/mHC stream-mixing gains of a trained model over
// text windows (metrics: model/residual/stream_gains.h), and their SVG figure.
#pragma once
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "model/residual/stream_gains.h"

namespace dynarch {

class ByteLM;

// Runs the model over `windows` (each predicted after a BOS) with a recorder
// and returns the per-stack metrics; empty when the model has no HC/mHC stack.
std::vector<StackStability> measure_stability(ByteLM& model, const std::vector<std::string>& windows, int64_t batch);

// SVG figure (log y axis over sub-layer index), one panel per stack.
std::string stability_svg(const std::vector<StackStability>& stacks, const std::string& title);

}  // namespace dynarch

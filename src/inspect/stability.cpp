#include "inspect/stability.h"

#include <torch/torch.h>

#include "core/error.h"
#include "inspect/svg_plot.h"
#include "model/lm.h"
#include "model/residual/stream_gains.h"

namespace dynarch {
using nlohmann::json;

std::vector<StackStability> measure_stability(ByteLM& model, const std::vector<std::string>& windows, int64_t batch) {
  check(!windows.empty(), "stability: no input windows");
  check(batch >= 1, "--batch must be >= 1");
  name_connections(model);
  ConnectionRecorder rec;
  torch::NoGradGuard ng;
  model.eval();
  for (size_t i = 0; i < windows.size(); i += batch) {
    const size_t nb = std::min<size_t>(batch, windows.size() - i);
    const int64_t L = windows[i].size() + 1;
    auto ids = at::full({(int64_t)nb, L}, kBOS, at::kLong);
    auto acc = ids.accessor<int64_t, 2>();
    for (size_t r = 0; r < nb; ++r) {
      check((int64_t)windows[i + r].size() + 1 == L, "stability: windows must have equal lengths");
      for (int64_t t = 1; t < L; ++t) acc[r][t] = (uint8_t)windows[i + r][t - 1];
    }
    model.forward(ids);
  }
  return stability_metrics(rec.traces);
}

std::string stability_svg(const std::vector<StackStability>& stacks, const std::string& title) {
  std::vector<Panel> panels;
  auto xs = [](size_t n) {
    std::vector<double> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = i + 1;
    return x;
  };
  for (auto& s : stacks) {
    auto x = xs(s.sublayers.size());
    Panel p{s.stack + ": gains", "sub-layer l", "Amax gain magnitude", {}, true, 1.0};
    p.series = {{"single fwd (A)", x, s.single_fwd.a_mean, "#7f7f7f", true},
                {"single bwd (A)", x, s.single_bwd.a_mean, "#bcbd22", true},
                {"composite fwd (A)", x, s.comp_fwd.a_mean, "#1f77b4"},
                {"composite fwd (B)", x, s.comp_fwd.b, "#17becf", true},
                {"composite fwd (A, max)", x, s.comp_fwd.a_max, "#9467bd", true},
                {"composite bwd (A)", x, s.comp_bwd.a_mean, "#d62728"},
                {"composite bwd (B)", x, s.comp_bwd.b, "#ff7f0e", true}};
    panels.push_back(p);
    Panel m{s.stack + ": min column sum", "sub-layer l", "min_j sum_i A[i,j]", {}, false, 1.0};
    m.series = {{"single (A)", x, s.single_minc.a_mean, "#7f7f7f", true},
                {"composite fwd (A)", x, s.comp_fwd_minc.a_mean, "#1f77b4"},
                {"composite bwd (A)", x, s.comp_bwd_minc.a_mean, "#d62728"}};
    panels.push_back(m);
  }
  return svg_line_charts(panels, title, 2);
}

}  // namespace dynarch

#include "model/residual/stream_gains.h"

#include <torch/torch.h>

#include <map>

#include "core/error.h"

namespace dynarch {
using nlohmann::json;

at::Tensor forward_gain(const at::Tensor& A) { return A.sum(-1).abs().amax(-1); }
at::Tensor backward_gain(const at::Tensor& A) { return A.sum(-2).abs().amax(-1); }
at::Tensor min_col_sum(const at::Tensor& A) { return A.sum(-2).amin(-1); }

namespace {

std::string stack_of(const std::string& name) {
  auto p = name.rfind(".layers.");
  return p == std::string::npos ? name : name.substr(0, p);
}

// Appends mean / max over tokens (variant A) and the value of the averaged matrix (B).
void push(GainSeries& s, const at::Tensor& per_token, double b) {
  s.a_mean.push_back(per_token.mean().item<double>());
  s.a_max.push_back(per_token.max().item<double>());
  s.b.push_back(b);
}

double second_eigen_abs(const at::Tensor& A) {
  if (A.size(0) < 2) return 0.0;
  auto ev = std::get<0>(at::sort(at::linalg_eigvals(A).abs(), 0, /*descending=*/true));
  return ev[1].item<double>();
}

json series_json(const GainSeries& s) { return json{{"A_mean", s.a_mean}, {"A_max", s.a_max}, {"B", s.b}}; }

// Traces grouped by stack (order of first appearance); repeated calls of the
// same sub-layer (several batches) are concatenated over tokens.
std::vector<std::pair<std::string, std::vector<std::pair<std::string, at::Tensor>>>> group(
    const std::vector<ConnectionTrace>& traces) {
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, at::Tensor>>>> out;
  std::map<std::string, std::vector<at::Tensor>> parts;
  std::vector<std::string> order;
  for (auto& t : traces) {
    if (!parts.count(t.name)) order.push_back(t.name);
    parts[t.name].push_back(t.res.to(at::kDouble).reshape({-1, t.res.size(-2), t.res.size(-1)}));
  }
  for (auto& name : order) {
    const auto st = stack_of(name);
    if (out.empty() || out.back().first != st) {
      for (auto& o : out) check(o.first != st, "stability: sub-layers of stack " + st + " are not contiguous");
      out.push_back({st, {}});
    }
    out.back().second.push_back({name, at::cat(parts[name], 0)});
  }
  return out;
}

}  // namespace

std::vector<StackStability> stability_metrics(const std::vector<ConnectionTrace>& traces) {
  std::vector<StackStability> out;
  for (auto& [stack, layers] : group(traces)) {
    StackStability s;
    s.stack = stack;
    const int64_t T = layers.front().second.size(0);
    s.tokens = T;
    std::vector<at::Tensor> H, Hbar;
    for (auto& [name, h] : layers) {
      check(h.size(0) == T, "stability: sub-layer " + name + " saw a different number of tokens");
      s.sublayers.push_back(name);
      H.push_back(h);
      Hbar.push_back(h.mean(0));
    }
    const size_t Lambda = H.size();
    at::Tensor P, Pbar;
    for (size_t l = 0; l < Lambda; ++l) {
      push(s.single_fwd, forward_gain(H[l]), forward_gain(Hbar[l]).item<double>());
      push(s.single_bwd, backward_gain(H[l]), backward_gain(Hbar[l]).item<double>());
      push(s.single_minc, min_col_sum(H[l]), min_col_sum(Hbar[l]).item<double>());
      s.lambda2.push_back(second_eigen_abs(Hbar[l]));
      P = l == 0 ? H[0] : at::bmm(H[l], P);
      Pbar = l == 0 ? Hbar[0] : at::mm(Hbar[l], Pbar);
      push(s.comp_fwd, forward_gain(P), forward_gain(Pbar).item<double>());
      push(s.comp_fwd_minc, min_col_sum(P), min_col_sum(Pbar).item<double>());
    }
    // Q_l = H_Λ ... H_l, computed from the output backwards, stored in layer order.
    std::vector<std::tuple<at::Tensor, double, at::Tensor, double>> back(Lambda);
    at::Tensor Q, Qbar;
    for (size_t k = Lambda; k-- > 0;) {
      Q = k + 1 == Lambda ? H[k] : at::bmm(Q, H[k]);
      Qbar = k + 1 == Lambda ? Hbar[k] : at::mm(Qbar, Hbar[k]);
      back[k] = {backward_gain(Q), backward_gain(Qbar).item<double>(), min_col_sum(Q), min_col_sum(Qbar).item<double>()};
    }
    for (auto& [g, gb, m, mb] : back) {
      push(s.comp_bwd, g, gb);
      push(s.comp_bwd_minc, m, mb);
    }
    out.push_back(std::move(s));
  }
  return out;
}

json StackStability::to_json() const {
  return json{{"stack", stack},
              {"tokens", tokens},
              {"sublayers", sublayers},
              {"single", {{"forward_gain", series_json(single_fwd)},
                          {"backward_gain", series_json(single_bwd)},
                          {"min_col_sum", series_json(single_minc)},
                          {"lambda2_abs", lambda2}}},
              {"composite_forward", {{"gain", series_json(comp_fwd)}, {"min_col_sum", series_json(comp_fwd_minc)}}},
              {"composite_backward", {{"gain", series_json(comp_bwd)}, {"min_col_sum", series_json(comp_bwd_minc)}}}};
}

json stability_monitor(const std::vector<ConnectionTrace>& traces) {
  json out = json::object();
  auto vmax = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  auto vmin = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  for (auto& s : stability_metrics(traces)) {
    out[s.stack] = json{{"fwd", s.single_fwd.b},
                        {"bwd", s.single_bwd.b},
                        {"minc", s.single_minc.b},
                        {"lambda2", s.lambda2},
                        {"comp_fwd", vmax(s.comp_fwd.b)},
                        {"comp_bwd", vmax(s.comp_bwd.b)},
                        {"comp_fwd_A", vmax(s.comp_fwd.a_mean)},
                        {"comp_fwd_A_max", vmax(s.comp_fwd.a_max)},
                        {"comp_bwd_A", vmax(s.comp_bwd.a_mean)},
                        {"comp_minc", vmin(s.comp_fwd_minc.b)}};
  }
  return out;
}

}  // namespace dynarch

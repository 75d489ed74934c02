#include "model/hmodel/hmodel_metrics.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace dynarch {

at::Tensor normalise_rows(const at::Tensor& C) {
  auto s = C.sum(-1, true);
  return C / at::where(s > 0, s, at::ones_like(s));
}

at::Tensor normalized_entropy(const at::Tensor& c) {
  auto p = normalise_rows(c);
  return -at::xlogy(p, p).sum(-1) / std::log((double)c.size(-1));
}

at::Tensor js_divergence(const at::Tensor& p, const at::Tensor& q) {
  auto m = 0.5 * (p + q);
  auto kl = [&](const at::Tensor& a) { return (at::xlogy(a, a) - at::xlogy(a, m)).sum(-1); };
  return (0.5 * kl(p) + 0.5 * kl(q)) / std::log(2.0);
}

std::pair<at::Tensor, at::Tensor> walk_step(const at::Tensor& rho, const at::Tensor& C) {
  const int64_t K = C.size(-1), L = K - 1;
  auto flow = rho.unsqueeze(-1) * normalise_rows(C);  // (..., senders, targets)
  auto arrive = flow.sum(-2);                          // (..., targets)
  auto exit = arrive.select(-1, L);
  auto next = at::cat({at::zeros_like(arrive.narrow(-1, 0, 1)), arrive.narrow(-1, 0, L)}, -1);
  return {exit, next};
}

at::Tensor expected_depth(const std::vector<at::Tensor>& e, int T) {
  if (T < 0) T = (int)e.size() - 1;
  auto d = at::zeros_like(e[0]), s = at::zeros_like(e[0]);
  for (int r = 0; r < (int)e.size(); ++r) {
    d = d + r * e[r];
    s = s + e[r];
  }
  return d + T * (1.0 - s);
}

// ---------------------------------------------------------------- statistics

void RouteStats::add(const RouteTrace& t) {
  check(!t.steps.empty(), "routes: empty trace");
  if (rows_ == 0 && !exit_.defined()) {
    L = t.L;
    T = t.T;
    const int64_t K = L + 1, R = T + 1;
    auto z = [](std::vector<int64_t> s) { return at::zeros(s, at::kDouble); };
    exit_ = z({R}), rho_ = z({R, K}), flow_ = z({R, K, K}), rows_sum_ = z({R, K, K}), rows_n_ = z({R, K});
    ent_sum_ = z({R, K}), self_sum_ = z({L}), self_n_ = z({L}), selfw_ = z({L}), active_n_ = z({R, L});
    rms_in_ = z({R, L}), rms_out_ = z({R, L}), rms_cnt_ = z({R, L});
  }
  check(t.L == L && t.T == T, "routes: traces of different models (L, T) cannot be combined");
  const int64_t K = L + 1;
  auto valid = t.valid.reshape({-1}).to(at::kCPU, at::kDouble);  // statistics on the host
  const int64_t N = valid.size(0);
  auto rho = at::zeros({N, K}, at::kDouble);
  rho.select(1, 0).fill_(1.0);
  std::vector<at::Tensor> exits;
  for (size_t r = 0; r < t.steps.size(); ++r) {
    const auto& st = t.steps[r];
    auto C = st.C.reshape({N, K, K}).to(at::kCPU, at::kDouble);
    auto act = st.sender.reshape({N, K}).to(at::kCPU, at::kDouble) * valid.unsqueeze(1);  // active valid rows
    auto ch = normalise_rows(C);
    rho_[r] += (rho * valid.unsqueeze(1)).sum(0);
    flow_[r] += ((rho.unsqueeze(-1) * ch) * valid.view({N, 1, 1})).sum(0);
    auto [e, next] = walk_step(rho, C);
    exits.push_back(e);
    exit_[r] += (e * valid).sum();
    rows_sum_[r] += (ch * act.unsqueeze(-1)).sum(0);
    rows_n_[r] += act.sum(0);
    ent_sum_[r] += (normalized_entropy(C) * act).sum(0);
    for (int j = 1; j <= L; ++j) {
      auto cjj = C.select(1, j).select(1, j - 1);
      self_sum_[j - 1] += (cjj * act.select(1, j)).sum();
      self_n_[j - 1] += act.select(1, j).sum();
      selfw_[j - 1] += (rho.select(1, j) * cjj * valid).sum();
      if (r >= 1) active_n_[r][j - 1] += act.select(1, j).sum();
    }
    if (r >= 1 && st.rms_in.defined()) {
      auto ok = st.rms_in.isnan().logical_not().to(at::kCPU, at::kDouble);
      rms_in_[r] += at::nan_to_num(st.rms_in.to(at::kCPU, at::kDouble), 0.0);
      rms_out_[r] += at::nan_to_num(st.rms_out.to(at::kCPU, at::kDouble), 0.0);
      rms_cnt_[r] += ok;
    }
    rho = next;
  }
  // A halted trace has fewer steps: its remaining mass counts at the model's T, not at its last step.
  depth_sum_ += (dynarch::expected_depth(exits, T) * valid).sum().item<double>();
  rows_ += (int64_t)valid.sum().item<double>();
  calls += t.calls;
  calls_dense += t.calls_dense;
}

namespace {
std::vector<double> vec(const at::Tensor& t) {
  auto c = t.to(at::kCPU, at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}
std::vector<std::vector<double>> mat(const at::Tensor& t) {
  std::vector<std::vector<double>> out;
  for (int64_t i = 0; i < t.size(0); ++i) out.push_back(vec(t[i]));
  return out;
}
at::Tensor div_or_nan(const at::Tensor& a, const at::Tensor& n) {
  return at::where(n > 0, a / n.clamp_min(1e-300), at::full_like(a, std::numeric_limits<double>::quiet_NaN()));
}
}  // namespace

std::vector<double> RouteStats::exit_profile() const { return vec(exit_ / std::max<int64_t>(rows_, 1)); }
double RouteStats::expected_depth() const { return depth_sum_ / std::max<int64_t>(rows_, 1); }
std::vector<double> RouteStats::usage() const {
  return vec(rho_.narrow(0, 1, T).narrow(1, 1, L).sum(0) / std::max<int64_t>(rows_, 1));
}
std::vector<double> RouteStats::call_rate() const {
  return vec(active_n_.narrow(0, 1, T).sum(0) / std::max<int64_t>(rows_ * T, 1));
}
std::vector<double> RouteStats::self_mass() const { return vec(div_or_nan(self_sum_, self_n_)); }
std::vector<double> RouteStats::self_mass_walk() const { return vec(selfw_ / std::max<int64_t>(rows_, 1)); }
std::vector<std::vector<double>> RouteStats::entropy() const { return mat(div_or_nan(ent_sum_, rows_n_)); }
std::vector<std::vector<double>> RouteStats::occupancy() const { return mat(rho_ / std::max<int64_t>(rows_, 1)); }
double RouteStats::mean_entropy() const {
  return ent_sum_.sum().item<double>() / std::max(rows_n_.sum().item<double>(), 1.0);
}

std::vector<std::vector<std::vector<double>>> RouteStats::mean_rows() const {
  auto m = div_or_nan(rows_sum_, rows_n_.unsqueeze(-1));
  std::vector<std::vector<std::vector<double>>> out;
  for (int64_t r = 0; r < m.size(0); ++r) out.push_back(mat(m[r]));
  return out;
}

std::vector<std::vector<double>> RouteStats::input_dependence() const {
  auto mean = div_or_nan(rows_sum_, rows_n_.unsqueeze(-1));
  return mat(normalized_entropy(at::nan_to_num(mean, 0.0)) - div_or_nan(ent_sum_, rows_n_));
}

std::vector<std::vector<std::vector<double>>> RouteStats::flow() const {
  auto f = flow_ / std::max<int64_t>(rows_, 1);
  std::vector<std::vector<std::vector<double>>> out;
  for (int64_t r = 0; r < f.size(0); ++r) out.push_back(mat(f[r]));
  return out;
}
std::vector<std::vector<double>> RouteStats::collapsed_flow() const {
  // Mass that step T sends to layers is dropped: only its exits count.
  auto f = flow_.narrow(0, 0, T).sum(0);
  f.select(1, L) += flow_[T].select(1, L);
  return mat(f / std::max<int64_t>(rows_, 1));
}
std::vector<std::vector<double>> RouteStats::rms_in() const { return mat(div_or_nan(rms_in_, rms_cnt_)); }
std::vector<std::vector<double>> RouteStats::rms_out() const { return mat(div_or_nan(rms_out_, rms_cnt_)); }

RouteComparison compare_routes(const RouteStats& a, const RouteStats& b) {
  check(!a.empty() && !b.empty(), "routes --compare: an input set produced no routing rows");
  check(a.L == b.L && a.T == b.T, "routes --compare: the two sets come from different models");
  auto ma = a.mean_rows(), mb = b.mean_rows();
  auto oa = a.occupancy(), ob = b.occupancy();
  RouteComparison c;
  double wsum = 0, wjs = 0, psum = 0;
  int pn = 0;
  for (int r = 0; r <= a.T; ++r) {
    std::vector<double> row;
    for (int i = 0; i <= a.L; ++i) {
      auto p = at::tensor(ma[r][i], at::kDouble), q = at::tensor(mb[r][i], at::kDouble);
      if (p.isnan().any().item<bool>() || q.isnan().any().item<bool>()) {
        row.push_back(std::numeric_limits<double>::quiet_NaN());
        continue;
      }
      const double js = js_divergence(p, q).item<double>();
      const double w = 0.5 * (oa[r][i] + ob[r][i]);
      row.push_back(js);
      wjs += w * js;
      wsum += w;
      psum += js;
      ++pn;
    }
    c.js.push_back(row);
  }
  c.weighted = wsum > 0 ? wjs / wsum : 0.0;
  c.plain = pn ? psum / pn : 0.0;
  return c;
}

}  // namespace dynarch

// H-Model routing metrics (hmodel.md §11): the routing walk and what is
// derived from it (expected depth, exit profile, usage), self-loop mass,
// routing entropy, input dependence, JS divergence between input sets, and the
// detached per-step trace a forward pass records for them.
//
// Indexing: a step's full routing matrix C is (..., L+1, L+1) with rows =
// senders {IN, 1..L} and columns = targets {1..L, OUT}; rows of senders that
// are inactive at that step (or position) are zero.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "core/forward_context.h"

namespace dynarch {

// c / row sum (zero rows stay zero): the walk's transition rows ĉ.
at::Tensor normalise_rows(const at::Tensor& C);
// H(ĉ) / log(K) per row, in [0, 1].
at::Tensor normalized_entropy(const at::Tensor& c);
// Base-2 Jensen-Shannon divergence of distributions along the last dim, in [0, 1].
at::Tensor js_divergence(const at::Tensor& p, const at::Tensor& q);
// One walk step: rho (..., L+1) over senders -> {exit e_r (...), rho (..., L+1)
// of the next step (IN gets 0)}. Differentiable.
std::pair<at::Tensor, at::Tensor> walk_step(const at::Tensor& rho, const at::Tensor& C);
// E[depth] = sum_r r e_r + T (1 - sum_r e_r); exits = e_0..e_r' (r' <= T: a halted walk's
// later exits are 0, its remaining mass counts at T as in §11). T < 0: exits.size() - 1.
at::Tensor expected_depth(const std::vector<at::Tensor>& exits, int T = -1);

// What one forward recorded, detached on the CPU in fp64.
struct RouteStep {
  at::Tensor C;       // (B, S', L+1, L+1), S' = S (per_token) or 1 (per_sequence)
  at::Tensor sender;  // (B, S', L+1) bool: sender active at this step
  at::Tensor counts;  // (B, S', L+1) contributors per target
  at::Tensor rms_in, rms_out;  // (L): RMS of X_j, h_j of iteration r over active positions (NaN: never active); r >= 1
};
struct RouteTrace {
  int L = 0, T = 0;
  bool per_sequence = false;
  at::Tensor valid;              // (B, S') bool
  std::vector<RouteStep> steps;  // r = 0 .. (T, or the step it halted at)
  int64_t calls = 0, calls_dense = 0;  // node applications (row-wise) executed / dense T*L per row
};

// While one is alive, every H-Model forward appends its trace (the routes sink
// of core/forward_context.h).
class RouteRecorder {
 public:
  std::vector<RouteTrace> traces;

 private:
  ForwardScope scope_{[this](ForwardContext& c) { c.routes = &traces; }};
};

// Sums over the valid rows of one or more traces (same L, T), then means.
class RouteStats {
 public:
  void add(const RouteTrace& t);
  bool empty() const { return rows_ == 0; }
  int L = 0, T = 0;
  // Per step r = 0..T (steps never run hold zeros):
  std::vector<double> exit_profile() const;                 // mean e_r
  double expected_depth() const;
  std::vector<double> usage() const;                        // visits u_j = sum_{r>=1} mean rho_j (L)
  std::vector<double> call_rate() const;                    // share of (r >= 1, row) with j active (L)
  std::vector<double> self_mass() const;                    // mean c_jj over active (r, rows) (L)
  std::vector<double> self_mass_walk() const;               // sum_r mean rho_j c_jj (L)
  std::vector<std::vector<double>> entropy() const;         // [r][i] mean normalised entropy (NaN: no rows)
  std::vector<std::vector<double>> input_dependence() const;  // [r][i] H(mean ĉ) - mean H(ĉ), normalised
  std::vector<std::vector<std::vector<double>>> mean_rows() const;  // [r][i][k] mean ĉ over active rows
  std::vector<std::vector<double>> occupancy() const;       // [r][i] mean rho_i^(r)
  std::vector<std::vector<std::vector<double>>> flow() const;  // [r][i][k] mean rho_i c_ik (trellis)
  std::vector<std::vector<double>> collapsed_flow() const;  // [i][k] summed over r (step T: exits only)
  std::vector<std::vector<double>> rms_in() const, rms_out() const;  // [r][j], r = 0 unused
  double mean_entropy() const;                              // over all active rows and steps
  int64_t calls = 0, calls_dense = 0, rows() const { return rows_; }

 private:
  int64_t rows_ = 0;
  double depth_sum_ = 0;
  at::Tensor exit_, rho_, flow_, rows_sum_, rows_n_, ent_sum_, self_sum_, self_n_, selfw_, active_n_, rms_in_,
      rms_out_, rms_cnt_;
};

struct RouteComparison {
  std::vector<std::vector<double>> js;  // [r][i] (NaN where a set has no active row)
  double weighted = 0, plain = 0;       // occupancy-weighted mean, plain mean over defined (r, i)
};
RouteComparison compare_routes(const RouteStats& a, const RouteStats& b);

}  // namespace dynarch

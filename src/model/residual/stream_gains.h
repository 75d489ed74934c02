// Stability metrics of HC/mHC stream mixing ("Amax gain magnitude", mhc.md §7):
// per sub-layer and composite forward/backward gains of H_res, both token
// averaging variants, the minimum column sum and |lambda_2|. Training logs the
// cheap monitor; `dynarch stability` (inspect/stability.h) the full metrics.
#pragma once
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "model/residual/residual.h"

namespace dynarch {

// For an n x n mapping A (destination x source), or a batch (..., n, n).
at::Tensor forward_gain(const at::Tensor& A);   // max_i |sum_j A[i, j]|
at::Tensor backward_gain(const at::Tensor& A);  // max_j |sum_i A[i, j]|
at::Tensor min_col_sum(const at::Tensor& A);    // min_j sum_i A[i, j]

// Gains of one quantity over the sub-layers l = 1..Λ of one stack.
struct GainSeries {
  std::vector<double> a_mean, a_max;  // variant A: per token, then mean / max over tokens
  std::vector<double> b;              // variant B: of the token-averaged matrices
};

struct StackStability {
  std::string stack;                  // e.g. "backbone.main_network"
  std::vector<std::string> sublayers; // trace names in order
  GainSeries single_fwd, single_bwd, single_minc;
  GainSeries comp_fwd, comp_fwd_minc;  // P_l = H_l ... H_1
  GainSeries comp_bwd, comp_bwd_minc;  // Q_l = H_Λ ... H_l
  std::vector<double> lambda2;        // |lambda_2| of the averaged H_l
  int64_t tokens = 0;
  nlohmann::json to_json() const;
};

// Groups traces by stack (the name before ".layers.") keeping their order;
// every trace of a stack must have the same number of tokens.
std::vector<StackStability> stability_metrics(const std::vector<ConnectionTrace>& traces);
// Cheap training-time monitor: per stack, single-layer gains of the averaged
// matrices, composites (B) and the max-over-tokens composite forward gain.
nlohmann::json stability_monitor(const std::vector<ConnectionTrace>& traces);

}  // namespace dynarch

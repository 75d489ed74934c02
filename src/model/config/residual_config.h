// Residual-stream policy of a block stack (mhc.md), as configured: the JSON
// section "residual" of a model config. The modules are in model/residual/residual.h.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace dynarch {

struct ResidualConfig {
  std::string type = "plain";      // plain | hc | mhc
  int n = 1;                       // streams (default 4 for hc/mhc)
  std::string collapse = "mean";   // mean | sum | learned
  std::string init = "identity";   // mhc: identity | zero | lucidrains | symmetric; hc: identity
  double init_c = 3.0;             // identity preset logit scale
  double alpha_init = 0.01;        // gate scalars (HC s_alpha, s_beta; mHC alpha_pre/post/res)
  int sinkhorn_iters = 20;         // mhc: Sinkhorn-Knopp iterations (columns, then rows)
  double sinkhorn_eps = 1e-6;      // mhc: eps of the Sinkhorn divisions
  bool eps_after_first = false;    // mhc: DeepSeek-V4's first column step
  double rms_eps = 1e-6;           // mhc: eps of the flattened RMS
  double pre_eps = 0.0;            // mhc: added to H_pre (DeepSeek-V4 uses 1e-6)
  bool tanh = true;                // hc: tanh on the dynamic parts
  bool stream_embed = false;       // learned per-stream vector added at expansion (init 0)
  double out_std_scale = 1.0;      // hc_out_std_scale: multiplies the out_proj/fc2 init std

  bool streams() const { return type != "plain"; }
  static ResidualConfig from_json(const nlohmann::json& j, const std::string& where);
  nlohmann::json to_json() const;
};

}  // namespace dynarch

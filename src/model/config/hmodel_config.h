// H-Model configuration (hmodel.md §14): the optional JSON section "hmodel" of
// a model config. With it, the innermost stage's main network is a routed pool
// of its layout's layers (one node per layer) instead of a plain stack.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace dynarch {

struct LayerSpec;

// Nodes taken from elsewhere or of another width (hmodel.md §6). One entry may
// cover several nodes; `at` holds their 1-based indices in the pool.
struct HModelNodeSpec {
  std::vector<int> at;
  std::string from;               // run dir (RUN, RUN/checkpoint) or .safetensors; "" = fresh
  std::vector<int> layers;        // source layer of each node (default 0, 1, ...)
  std::string prefix = "backbone.main_network.layers.";  // source tensor names: prefix + k + "." + name
  bool freeze = false;            // no gradient, not in the optimiser
  std::string adapter = "none";   // none | pad | linear (width d' != d)
  nlohmann::json source_config;   // source model config (innermost stage gives the layer's options)
  int d_model = 0;                // width override without a source config (0 = inherit)
  int d_intermediate = -1;        // MLP width override (-1 = inherit)
};

struct HModelConfig {
  int T = 0;  // message-passing iterations (default: L)
  // routing (hmodel.md §2–§5, §9)
  std::string granularity = "per_token";  // per_token | per_sequence
  std::string sharpen = "softmax";        // softmax | power | sigmoid
  // The weights `power` sharpens: sigmoid gates (default) or softmax (then power == softmax(alpha z));
  // doubly-stochastic routing: the Sinkhorn output (this key unused).
  std::string power_of = "sigmoid";
  double alpha = 1.0;                     // fixed alpha (schedule "constant")
  std::string alpha_schedule = "constant";  // constant | linear | exp
  double alpha_start = 1.0, alpha_end = 1.0;
  int64_t alpha_steps = 0;                // schedule length in training steps
  int topk = 0;                           // 0 = off
  bool straight_through = false;          // top-k: gradient of the dense rows
  std::string norm = "count";             // count | weighted | none
  double tau = 0.0;                       // contributor threshold
  bool allow_self = true, inject_input = false, source_embed = false, doubly_stochastic = false;
  int sinkhorn_iters = 20;
  double sinkhorn_eps = 1e-6;
  // heads (§3)
  std::string head_init = "uniform";  // uniform | chain | self_next
  double head_init_c = 3.0;
  int head_hidden = 0;
  // readout (§5)
  std::string readout = "accumulate";  // accumulate | last | node:k
  int readout_node = 0;                // k for node:k
  bool flush_last = false;
  // objectives (§8)
  double lambda_depth = 0, lambda_self = 0, lambda_ent = 0, lambda_bal = 0;
  // inference (§8, §10)
  int infer_topk = 0;
  double infer_threshold = 0.0, halt_eps = 0.0;
  bool sparse = true;                          // skip node calls on rows without active positions
  std::string skip_semantics = "zero_input";   // zero_input (hold_state: not implemented)
  std::vector<HModelNodeSpec> nodes;

  int L = 0;  // pool size (from the layout; not a JSON field)

  // `pool`, `d`: the innermost layout and width the section applies to.
  static HModelConfig from_json(const nlohmann::json& j, const std::string& where, const std::vector<LayerSpec>& pool,
                                int d);
  nlohmann::json to_json() const;
  // alpha at a training step (step < 0: after training = the schedule's end).
  double alpha_at(int64_t step) const;
  // Spec of node j (1..L), or null.
  const HModelNodeSpec* node_spec(int j) const;
};

}  // namespace dynarch

// The H-Model (hmodel.md): a pool of L layer nodes of one width d; every
// sender (IN, then the active layers) routes its state over the L+1 targets
// {layers, OUT} through its RoutingHead; T message-passing iterations, T
// independent of L; incoming messages are summed with the routing weights and
// normalised (by the number of contributors by default). It is a `Stack`: the
// innermost stage's main network when the config has an "hmodel" section.
#pragma once
#include <torch/nn/modules/linear.h>

#include "model/hmodel/hmodel_metrics.h"
#include "model/stack/isotropic.h"
#include "model/hmodel/routing_head.h"
#include "model/stack/stack.h"

namespace dynarch {

// Width adapter of a node (§6): `pad` appends a learned vector (d' > d) and
// keeps the first d outputs; `linear` projects, initialised [I 0] / [I; 0].
class NodeAdapter : public torch::nn::Module {
 public:
  NodeAdapter(const std::string& mode, int64_t from, int64_t to, bool input);
  at::Tensor forward(const at::Tensor& x) const;
  std::string mode;
  int64_t from, to;
  at::Tensor pad, weight;
};

// A WithConnection node: the wrapped layer (a one-layer pre-norm stack without
// final norm, so h = X + Branch(RMSNorm(X)) under the configured residual
// policy), its RoutingHead and optional adapters.
class HModelNode : public torch::nn::Module {
 public:
  HModelNode(const LayerSpec& spec, const StackOptions& o, int64_t d, int64_t targets, int head_hidden,
             const std::string& adapter);
  // X (B, S, d) -> h (B, S, d). With a cache slot: continues it (forward) or,
  // with step = true and S = 1, steps it; `pos` = the rows' positions.
  at::Tensor apply(const at::Tensor& X, LayerCache* slot, const std::vector<int64_t>* pos, const at::Tensor& lengths,
                   bool step);
  std::shared_ptr<Isotropic> layer;
  std::shared_ptr<RoutingHead> head;
  std::shared_ptr<NodeAdapter> adapter_in, adapter_out;
  LayerSpec spec;
  bool position_wise;  // 'f': no state; positions are independent
};

// Message passing of one step (§5). C (B, Sp, senders, targets) routing rows,
// H[i] (B, S, d) the message of sender i (undefined: not a sender, its row is 0)
// -> M (B, S, targets, d) = sum_i c_ik H_i, contributors n = #{i : c_ik > tau}
// (no gradient) and mass w = sum_i c_ik, both (B, Sp, targets).
struct Messages {
  at::Tensor M, n, w;
};
Messages aggregate(const at::Tensor& C, const std::vector<at::Tensor>& H, double tau);
// X = M / max(n, 1) (count) | M / max(w, 1e-6) (weighted) | M (none); n, w (..., 1) broadcast over d.
at::Tensor normalise_messages(const at::Tensor& M, const at::Tensor& n, const at::Tensor& w, const std::string& norm);

// Node applications counted over forwards (row = example or sequence; a decode
// step's row = one token): executed vs the dense T*L per row.
struct HModelStats {
  int64_t calls = 0, calls_dense = 0;          // (iteration, node, row) applications
  int64_t positions = 0, positions_dense = 0;  // position-wise nodes: positions run
  int64_t active_positions = 0, all_positions = 0;  // (iteration, node, position) with n_j > 0 / all
  int64_t forwards = 0, halted = 0;            // forwards that skipped their last iterations (infer.halt_eps)
  int64_t halted_rows = 0;                     // valid rows (positions / examples) halted before step T
  int64_t steps_run = 0;                       // routing steps run, summed over forwards
};

class HModel : public Stack {
 public:
  // `base`: the stage's stack options (widths, mixer options, residual policy).
  HModel(const ModelConfig& c, int stage, const StackOptions& base);
  at::Tensor forward(const at::Tensor& x, StackState* state = nullptr, const at::Tensor& lengths = {}) override;
  at::Tensor step(const at::Tensor& x, StackState& state) override;
  // T x L cache slots: slot (r - 1) * L + (j - 1) for iteration r, node j (§7).
  StackState new_state(int64_t batch, at::ScalarType dtype) const override;
  void init_linears(double n_res, double sigma = 0.02) override;
  // The training step for the alpha schedule; < 0 (default): after training.
  void set_training_step(int64_t step) { step_ = step; }
  double alpha() const { return cfg.alpha_at(step_); }

  HModelConfig cfg;
  int L, T;
  int64_t d;
  std::shared_ptr<RoutingHead> input_head;
  std::vector<std::shared_ptr<HModelNode>> nodes;  // nodes[j - 1] = node j
  at::Tensor source_embed;                         // (L+1, d): e_i added to sender i's messages
  std::shared_ptr<RMSNorm> rmsnorm;                // task heads read RMSNorm(y)
  // Tests: per step r a fixed (L+1, L+1) routing matrix replacing the heads.
  std::vector<at::Tensor> fixed_routing;
  HModelStats stats;

 private:
  at::Tensor run(const at::Tensor& x, StackState* state, const at::Tensor& lengths, bool step);
  // Routing rows of step r (B, Sp, L+1, L+1); zero rows where smask (B, Sp, L+1) is false.
  at::Tensor routing_matrix(int r, const std::vector<int>& senders, const std::vector<at::Tensor>& h,
                            const at::Tensor& smask, const at::Tensor& valid, bool infer);
  // Step r's routing over its active senders (smask receives them, (B, Sp, L+1))
  // and the messages they send (§5).
  // Rows where `live` (B, Sp) is false (halted) send nothing.
  std::pair<at::Tensor, Messages> route(int r, const std::vector<at::Tensor>& h, const std::vector<at::Tensor>& act,
                                        const at::Tensor& live, const at::Tensor& valid, bool infer,
                                        at::Tensor& smask);
  // Iteration r: every layer with a contributor runs on its normalised input; with
  // rms_in/rms_out, the RMS of each layer's input and output over its active positions.
  void run_layers(int r, const Messages& agg, const at::Tensor& n, const at::Tensor& w, std::vector<at::Tensor>& h,
                  std::vector<at::Tensor>& act, const at::Tensor& live, const at::Tensor& valid, StackState* state,
                  const at::Tensor& lengths,
                  bool stepping, bool autocast, at::Tensor* rms_in, at::Tensor* rms_out);
  at::Tensor run_node(int r, int j, const at::Tensor& X, const at::Tensor& active, StackState* state,
                      const at::Tensor& lengths, bool step);
  int64_t step_ = -1;
};

}  // namespace dynarch

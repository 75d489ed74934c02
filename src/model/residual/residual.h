// Residual-stream policy of a block stack (mhc.md): `plain` (x + F(x)), `hc`
// (hyper-connections, static + dynamic, tanh, per stream) or `mhc`
// (manifold-constrained: flattened RMS, sigma / 2 sigma maps, H_res projected by
// Sinkhorn-Knopp). With n streams the stack expands its input to n copies at
// the entry and collapses them at the exit; every sub-layer (mixer, MLP) then
// updates the streams by  X' = H_res X + H_post^T F(H_pre X).
#pragma once
#include <torch/nn/module.h>

#include <functional>
#include <string>
#include <vector>

#include "core/forward_context.h"
#include "model/config/residual_config.h"
#include "kernels/cpu/streams/sinkhorn.h"

namespace dynarch {



// What a sub-layer's maps were on the last forward (for stability metrics).
struct ConnectionTrace {
  std::string name;       // module path, e.g. "backbone.main_network.layers.3.hc_mlp"
  at::Tensor pre, post;   // (T, n)
  at::Tensor res;         // (T, n, n) destination x source
};
// While one is alive, every connection appends its maps, detached
// (the connections sink of core/forward_context.h).
class ConnectionRecorder {
 public:
  std::vector<ConnectionTrace> traces;

 private:
  ForwardScope scope_{[this](ForwardContext& c) { c.connections = &traces; }};
};

// The n-stream state between sub-layers. A fused mHC sub-layer leaves its merge
// X' = R X + post^T y pending so that the next mHC sub-layer forms X' inside its
// own fused input pass (mhc_merge_pre); anything else settles it first.
struct Streams {
  at::Tensor X;            // (..., n, D): the state, or while pending the merge's input
  at::Tensor R, post, y;   // pending merge over the flattened tokens: (T, n, n), (T, n), (T, D)
  bool pending() const { return R.defined(); }
};
// The materialised state: hc_post_res, or its reference in KernelMode::reference.
// (The separate_merge variant settles every merge this way, for A/B runs.)
at::Tensor settle(const Streams& s);

// One sub-layer's stream update. X: (..., n, D) in fp32 (fp64 in tests);
// F maps the branch input (..., D) to its output (..., D).
class StreamConnection : public torch::nn::Module {
 public:
  using Branch = std::function<at::Tensor(const at::Tensor&)>;
  // The update; the result may be pending (settle() materialises it).
  virtual Streams forward(const Streams& S, const Branch& F) = 0;
  at::Tensor forward(const at::Tensor& X, const Branch& F) { return settle(forward(Streams{X}, F)); }
  std::string trace_name;  // set by name_connections()

 protected:
  StreamConnection(const ResidualConfig& c) : cfg(c) {}
  // Shared tail: u = H_pre X (unless given), y = F(u); returns X' = H_res X + H_post^T y pending.
  Streams mix(const at::Tensor& X, const at::Tensor& pre, const at::Tensor& res, const at::Tensor& post,
              const Branch& F, at::Tensor u = {});
  ResidualConfig cfg;
};

// HC (mhc.md §2). Parameters: static_pre (n), static_res (n, n) = Ar[i, k],
// static_post (n), w_pre (D), w_res (n, D), w_post (D), gate_alpha, gate_beta, norm.weight.
class HyperConnection : public StreamConnection {
 public:
  HyperConnection(const ResidualConfig& c, int64_t d, int sublayer);
  using StreamConnection::forward;
  Streams forward(const Streams& S, const Branch& F) override;
  // H_pre (T, n), H_res (T, n, n), H_post (T, n) for X (T, n, D).
  std::tuple<at::Tensor, at::Tensor, at::Tensor> maps(const at::Tensor& X);
  at::Tensor static_pre, static_res, static_post, w_pre, w_res, w_post, gate_alpha, gate_beta, norm_weight;
};

// mHC (mhc.md §3). Parameters: phi (n^2 + 2n, n D) with rows [pre | post | res],
// the res block source-major (row 2n + j n + k = source j -> destination k);
// bias (n^2 + 2n); alpha (3) = [alpha_pre, alpha_post, alpha_res].
class ManifoldHyperConnection : public StreamConnection {
 public:
  ManifoldHyperConnection(const ResidualConfig& c, int64_t d, int sublayer);
  using StreamConnection::forward;
  Streams forward(const Streams& S, const Branch& F) override;
  std::tuple<at::Tensor, at::Tensor, at::Tensor> maps(const at::Tensor& X);
  at::Tensor phi, bias, alpha;

 private:
  // H_pre X and the maps, fused (kernels/cpu/streams/mhc_input.h) or from the reference ops. With a
  // pending S the fused path forms the merged state too; Xt returns it (T, n, D).
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> compute(const Streams& S, at::Tensor& Xt);
  int64_t d;
};

// `sublayer` counts the stack's sub-layers (mixer and MLP separately): it picks
// the home stream (sublayer mod n) of the identity presets. Null for plain.
std::shared_ptr<StreamConnection> make_connection(const ResidualConfig& c, int64_t d, int sublayer);

// Stack entry and exit: x (..., D) -> X (..., n, D) and back.
class StreamEnds : public torch::nn::Module {
 public:
  StreamEnds(const ResidualConfig& c, int64_t d);
  at::Tensor expand(const at::Tensor& x) const;
  at::Tensor collapse(const at::Tensor& X) const;
  // The same from a state whose last merge may be pending: for the mean and sum
  // collapses (fused) the merged n-stream state is never materialised.
  at::Tensor collapse(const Streams& S) const;
  at::Tensor stream_embed;          // (n, D) or undefined
  at::Tensor head_phi, head_bias, head_alpha;  // learned collapse (n, nD), (n), (1)
  ResidualConfig cfg;
};

// Sets trace_name of every connection below `root` to its module path.
void name_connections(torch::nn::Module& root, const std::string& prefix = "");
// Parameters of the residual policy that get no weight decay (static parts, gates, biases).
bool residual_no_decay(const std::string& param_name);
// Parameters that keep their own init (Isotropic::init_linears skips them).
bool residual_param(const std::string& param_name);

}  // namespace dynarch

#include "model/hmodel/hmodel.h"

#include <torch/torch.h>

#include <limits>

#include "core/compat.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "kernels/cpu/streams/sinkhorn.h"

namespace dynarch {

// ---------------------------------------------------------------- nodes

NodeAdapter::NodeAdapter(const std::string& m, int64_t f, int64_t t, bool input) : mode(m), from(f), to(t) {
  if (mode == "pad") {
    if (input) pad = register_parameter("pad", torch::zeros({t - f}));  // H-Net's pad_dimension
  } else {
    weight = register_parameter("weight", torch::eye(t, f));  // [I 0] or [I; 0]
  }
}

at::Tensor NodeAdapter::forward(const at::Tensor& x) const {
  if (mode == "linear") return at::linear(x, weight.to(x.scalar_type()));
  if (!pad.defined()) return x.narrow(-1, 0, to);  // pad, output side: the first d
  auto sizes = x.sizes().vec();
  sizes.back() = pad.size(0);
  return at::cat({x, pad.to(x.scalar_type()).expand(sizes)}, -1);
}

HModelNode::HModelNode(const LayerSpec& s, const StackOptions& o, int64_t d, int64_t K, int hidden,
                       const std::string& adapter)
    : spec(s), position_wise(s.mixer == 'f') {
  layer = register_module("layer", std::make_shared<Isotropic>(std::vector<LayerSpec>{s}, o));
  head = register_module("head", std::make_shared<RoutingHead>(d, K, hidden));
  if (adapter != "none") {
    adapter_in = register_module("adapter_in", std::make_shared<NodeAdapter>(adapter, d, o.d_model, true));
    adapter_out = register_module("adapter_out", std::make_shared<NodeAdapter>(adapter, o.d_model, d, false));
  }
}

at::Tensor HModelNode::apply(const at::Tensor& X, LayerCache* slot, const std::vector<int64_t>* pos,
                             const at::Tensor& lengths, bool step) {
  auto u = adapter_in ? adapter_in->forward(X) : X;
  at::Tensor y;
  if (slot) {
    StackState st;  // a one-layer view of this (iteration, node) slot
    st.layers = {*slot};
    st.pos = *pos;
    y = step ? layer->step(u.squeeze(1), st).unsqueeze(1) : layer->forward(u, &st, lengths);
    *slot = st.layers[0];
  } else {
    y = layer->forward(u);
  }
  if (adapter_out) y = adapter_out->forward(y);
  return y.to(X.scalar_type());
}

// ---------------------------------------------------------------- model

namespace {

int64_t round_mlp(int64_t d) { return d <= 0 ? 0 : (d + 127) / 128 * 128; }

void check_node_options(const LayerSpec& s, const StackOptions& o, int j) {
  const std::string w = "hmodel.nodes: node " + std::to_string(j);
  if (s.mixer == 't')
    check(o.num_heads >= 1 && o.d_model % o.num_heads == 0,
          w + ": width " + std::to_string(o.d_model) + " is not divisible by num_heads " + std::to_string(o.num_heads));
  if (s.mixer == 'm')
    check((o.ssm.expand * o.d_model) % o.ssm.headdim == 0,
          w + ": ssm expand * width is not divisible by headdim " + std::to_string(o.ssm.headdim));
  if (s.mlp) check(o.d_intermediate > 0, w + ": the layer has an MLP but d_intermediate is 0");
}

}  // namespace

HModel::HModel(const ModelConfig& c, int s, const StackOptions& base) : cfg(*c.hmodel) {
  const auto& layout = c.stages.at(s).main;
  L = (int)layout.size();
  T = cfg.T;
  d = c.d_model.at(s);
  check(L >= 1 && L == cfg.L, "hmodel: the layer pool does not match the innermost layout");
  const int64_t K = L + 1;
  input_head = register_module("input_head", std::make_shared<RoutingHead>(d, K, cfg.head_hidden));
  auto holder = register_module("nodes", std::make_shared<torch::nn::Module>());
  for (int j = 1; j <= L; ++j) {
    StackOptions o = base;
    std::string adapter = "none";
    bool freeze = false;
    if (const auto* ns = cfg.node_spec(j)) {
      adapter = ns->adapter;
      freeze = ns->freeze;
      if (!ns->source_config.is_null()) {
        auto sc = ModelConfig::from_json(ns->source_config, "hmodel.nodes source_config");
        o = stack_options(sc, sc.num_stages());
      } else {
        if (ns->d_model > 0) o.d_model = ns->d_model;
        if (ns->d_intermediate >= 0) o.d_intermediate = round_mlp(ns->d_intermediate);
      }
    }
    o.final_norm = false;
    check_node_options(layout[j - 1], o, j);
    auto node = std::make_shared<HModelNode>(layout[j - 1], o, d, K, cfg.head_hidden, adapter);
    holder->register_module(std::to_string(j), node);
    if (freeze)
      for (auto& p : node->layer->parameters()) p.set_requires_grad(false);
    nodes.push_back(node);
  }
  if (cfg.source_embed) source_embed = register_parameter("source_embed", torch::zeros({K, d}));
  rmsnorm = register_module("rmsnorm", std::make_shared<RMSNorm>(d));
  height = layout_height(layout);  // init as the plain stack of the same layers
}

void HModel::init_linears(double n_res, double sigma) {
  for (auto& n : nodes) n->layer->init_linears(n_res, sigma);
  // Chain targets: j -> j+1 inside a run of nodes from one source (fresh nodes
  // form one run), the end of a run -> OUT, IN -> the start of every run.
  std::vector<int> group(L + 2, -1);
  for (size_t e = 0; e < cfg.nodes.size(); ++e)
    if (!cfg.nodes[e].from.empty())
      for (int a : cfg.nodes[e].at) group[a] = (int)e;
  const bool ds = cfg.doubly_stochastic;
  auto next_of = [&](int j) {  // target index: j = layer j+1 (or OUT for j = L); DS keeps the plain chain
    const bool run_ends = !ds && j < L && group[j] != group[j + 1];
    return run_ends ? L : j;
  };
  std::vector<int> starts{0};
  if (!ds)
    for (int j = 2; j <= L; ++j)
      if (group[j] != group[j - 1]) starts.push_back(j - 1);
  input_head->init(cfg.head_init, cfg.head_init_c, -1, starts, ds, sigma);
  for (int j = 1; j <= L; ++j) nodes[j - 1]->head->init(cfg.head_init, cfg.head_init_c, j - 1, {next_of(j)}, ds, sigma);
}

StackState HModel::new_state(int64_t B, at::ScalarType dtype) const {
  StackState s;
  for (int r = 1; r <= T; ++r)
    for (int j = 1; j <= L; ++j) s.layers.push_back(nodes[j - 1]->layer->new_state(B, dtype).layers.at(0));
  s.pos.assign(B, 0);
  return s;
}

at::Tensor HModel::forward(const at::Tensor& x, StackState* state, const at::Tensor& lengths) {
  if (state) {
    if ((int64_t)state->layers.size() != (int64_t)T * L) *state = new_state(x.size(0), x.scalar_type());
    for (auto p : state->pos)
      check(p == state->pos.at(0), "HModel::forward: continuing a batch whose rows are at different positions");
  }
  auto y = run(x, state, lengths, false);
  if (state)
    for (size_t b = 0; b < state->pos.size(); ++b)
      state->pos[b] += lengths.defined() ? lengths[b].item<int64_t>() : x.size(1);
  return y;
}

at::Tensor HModel::step(const at::Tensor& x, StackState& state) {
  check(cfg.granularity == "per_token",
        "hmodel.routing.granularity: per_sequence routing pools the whole sequence (not causal); it has no "
        "step decode and cannot be used for language modelling");
  auto y = run(x.unsqueeze(1), &state, {}, true).squeeze(1);
  for (auto& p : state.pos) p += 1;
  return y;
}

at::Tensor HModel::run_node(int r, int j, const at::Tensor& X, const at::Tensor& active, StackState* state,
                            const at::Tensor& lengths, bool step) {
  auto& node = *nodes[j - 1];
  const int64_t B = X.size(0), S = X.size(1);
  LayerCache* slot = state ? &state->layers[(r - 1) * L + (j - 1)] : nullptr;
  stats.calls_dense += B;
  stats.all_positions += B * S;
  stats.active_positions += active.expand({B, S}).sum().item<int64_t>();
  if (node.position_wise) stats.positions_dense += B * S;
  // Stateful layers in a decoding state run on every row: the zero input of an
  // inactive row is part of their history (skip_semantics = zero_input).
  const bool all_rows = !cfg.sparse || (slot && !node.position_wise);
  auto rows = active.any(1);
  const int64_t nrows = all_rows ? B : rows.sum().item<int64_t>();
  const int64_t npos = node.position_wise && active.size(1) == S ? active.sum().item<int64_t>() : B * S;
  if (nrows == B && (all_rows || npos == B * S)) {
    stats.calls += B;
    if (node.position_wise) stats.positions += B * S;
    return node.apply(X, node.position_wise ? nullptr : slot, state ? &state->pos : nullptr, lengths, step);
  }
  auto out = at::zeros_like(X);
  if (nrows == 0) return out;
  stats.calls += nrows;
  const int64_t D = X.size(2);
  if (node.position_wise && active.size(1) == S) {  // only the active positions
    auto idx = active.reshape({-1}).nonzero().squeeze(1);
    stats.positions += npos;
    auto h = node.apply(X.reshape({B * S, D}).index_select(0, idx).unsqueeze(0), nullptr, nullptr, {}, false);
    return out.reshape({B * S, D}).index_copy(0, idx, h.squeeze(0)).view({B, S, D});
  }
  if (node.position_wise) stats.positions += nrows * S;
  auto ri = rows.nonzero().squeeze(1);
  auto h = node.apply(X.index_select(0, ri), nullptr, nullptr, {}, false);
  return out.index_copy(0, ri, h);
}

Messages aggregate(const at::Tensor& C, const std::vector<at::Tensor>& H, double tau) {
  // A sum over the few senders beats a batched (K x K) @ (K x d) matmul per position.
  at::Tensor M;
  for (size_t i = 0; i < H.size(); ++i) {
    if (!H[i].defined()) continue;
    auto t = C.select(-2, (int64_t)i).unsqueeze(-1) * H[i].unsqueeze(-2);
    M = M.defined() ? M + t : t;
  }
  return {M, (C > tau).to(C.scalar_type()).sum(-2).detach(), C.sum(-2)};
}

at::Tensor normalise_messages(const at::Tensor& M, const at::Tensor& n, const at::Tensor& w, const std::string& norm) {
  if (norm == "count") return M / n.clamp_min(1.0);
  if (norm == "weighted") return M / w.clamp_min(1e-6);
  return M;
}

namespace {

// Masked mean over valid positions: (B, S, D) -> (B, 1, D).
at::Tensor pool(const at::Tensor& h, const at::Tensor& valid) {
  auto m = valid.to(h.scalar_type()).unsqueeze(-1);
  return (h * m).sum(1, true) / m.sum(1, true).clamp_min(1.0);
}

at::Tensor rms_over(const at::Tensor& v, const at::Tensor& mask) {
  auto m = mask.to(at::kDouble).unsqueeze(-1).expand(v.sizes());
  const double n = m.sum().item<double>();
  if (n == 0) return at::full({}, std::numeric_limits<double>::quiet_NaN(), at::kDouble);
  return (v.detach().to(at::kDouble).pow(2) * m).sum().div(n).sqrt();
}

}  // namespace

at::Tensor HModel::routing_matrix(int r, const std::vector<int>& senders, const std::vector<at::Tensor>& h,
                                  const at::Tensor& smask, const at::Tensor& valid, bool infer) {
  const int64_t B = smask.size(0), Sp = smask.size(1), K = L + 1;
  const auto opt = h[0].options();
  const bool per_seq = cfg.granularity == "per_sequence";
  at::Tensor C;
  if (!fixed_routing.empty()) {
    C = fixed_routing.at(r).to(opt).expand({B, Sp, K, K});
  } else if (r == T && cfg.flush_last) {  // every active output goes to OUT with weight 1
    C = at::zeros({B, Sp, K, K}, opt);
    C.select(-1, L).fill_(1.0);
  } else {
    std::vector<at::Tensor> z(K);
    for (int i : senders) {
      auto& head = i == 0 ? input_head : nodes[i - 1]->head;
      z[i] = head->forward(per_seq ? pool(h[i], valid) : h[i]);
      if (i > 0 && !cfg.allow_self) {
        auto self = at::zeros({K}, opt.dtype(at::kBool));
        self[i - 1] = true;
        z[i] = z[i].masked_fill(self, -std::numeric_limits<double>::infinity());
      }
    }
    if (cfg.doubly_stochastic) {  // C = SK(Z^T)^T: targets receive exactly unit mass (mhc.md §4)
      // softmax: alpha scales the logits. power: alpha acts on the Sinkhorn output, renormalised
      // per target (the exact direction), so targets keep unit mass while senders drift from 1.
      // (Re-projecting SK(Z)^alpha instead would give SK(alpha Z) again: no new mode.)
      const bool power = cfg.sharpen == "power";
      auto Z = at::stack(z, -2) * (power ? 1.0 : alpha());
      const SinkhornOptions sk{cfg.sinkhorn_iters, cfg.sinkhorn_eps, false};
      C = sinkhorn(Z.transpose(-1, -2).reshape({-1, K, K}).contiguous(), sk).view({B, Sp, K, K}).transpose(-1, -2);
      if (power) {
        C = C.pow(alpha());
        C = C / C.sum(-2, true);
      }
    } else {
      const SharpenOptions so{cfg.sharpen, alpha(), cfg.topk, cfg.straight_through, cfg.power_of};
      std::vector<at::Tensor> rows;
      for (int i = 0; i <= L; ++i) {
        if (!z[i].defined()) {
          rows.push_back(at::zeros({B, Sp, K}, opt));
          continue;
        }
        auto c = sharpen(z[i], so);
        rows.push_back(infer ? harden(c, cfg.infer_topk, cfg.infer_threshold) : c);
      }
      C = at::stack(rows, -2);
    }
  }
  return C * smask.to(opt.dtype()).unsqueeze(-1);
}

namespace {

// Sums for the routing objectives (§8) over the active valid rows of every step.
struct ObjectiveSums {
  at::Tensor self_sum, self_n, ent_sum, ent_n, bal_sum;
  // C (B, Sp, K, K); sm (B, Sp, K): active valid sender rows (0/1 in C's dtype).
  void add(const at::Tensor& C, const at::Tensor& sm) {
    const int64_t L = C.size(-1) - 1;
    auto acc = [](at::Tensor& a, const at::Tensor& v) { a = a.defined() ? a + v : v; };
    auto sml = sm.narrow(-1, 1, L);
    acc(ent_sum, (normalized_entropy(C) * sm).sum());
    acc(ent_n, sm.sum());
    acc(bal_sum, (normalise_rows(C) * sm.unsqueeze(-1)).sum(at::IntArrayRef{0, 1, 2}));
    acc(self_sum, (C.narrow(-2, 1, L).diagonal(0, -2, -1) * sml).sum(at::IntArrayRef{0, 1}));  // c_jj per layer
    acc(self_n, sml.sum(at::IntArrayRef{0, 1}));
  }
  void emit(const HModelConfig& c) const {
    if (!ent_sum.defined()) return;
    const int64_t K = bal_sum.size(0);
    add_aux_loss("hmodel_self", self_sum.sum() / self_n.sum().clamp_min(1.0), c.lambda_self);
    add_aux_loss("hmodel_ent", ent_sum / ent_n.clamp_min(1.0), c.lambda_ent);
    add_aux_loss("hmodel_bal", (double)K * (bal_sum / ent_n.clamp_min(1.0)).pow(2).sum(), c.lambda_bal);
    for (int64_t j = 1; j < K; ++j)  // per-layer self-loop mass (monitoring only)
      add_aux_loss("hmodel_self." + std::to_string(j), (self_sum[j - 1] / self_n[j - 1].clamp_min(1.0)).detach(), 0.0);
  }
};

}  // namespace

std::pair<at::Tensor, Messages> HModel::route(int r, const std::vector<at::Tensor>& h,
                                              const std::vector<at::Tensor>& act, const at::Tensor& live,
                                              const at::Tensor& valid, bool infer, at::Tensor& smask) {
  const auto& x = h[0];
  const auto dt = x.scalar_type();
  const int64_t B = x.size(0), S = x.size(1), K = L + 1, Sp = act[0].size(1);
  const bool last = r == T, ds = cfg.doubly_stochastic;
  std::vector<int> senders;
  for (int i = 0; i <= L; ++i) {
    const bool in_play = i == 0 ? (r == 0 || cfg.inject_input) : (r > 0 || ds);
    if (in_play && act[i].defined() && (ds || act[i].any().item<bool>())) senders.push_back(i);
  }
  smask = at::zeros({B, Sp, K}, live.options());
  for (int i : senders) smask.select(-1, i).copy_(act[i].logical_and(live));
  if (senders.empty()) {
    // Hardened routing sent everything to OUT before step T: nothing is in flight. The
    // remaining steps carry no messages, but still run (a decoding state's stateful
    // layers must see their zero inputs, as in the full forward).
    const int64_t Kc = last ? 1 : K;
    return {at::zeros({B, Sp, K, K}, x.options()),
            Messages{at::zeros({B, S, Kc, x.size(2)}, x.options()), at::zeros({B, Sp, Kc}, x.options()),
                     at::zeros({B, Sp, Kc}, x.options())}};
  }
  auto C = routing_matrix(r, senders, h, smask, valid, infer);
  // Messages: M_k = sum_i c_ik (h_i + e_i) for every target (only OUT at the last step).
  std::vector<at::Tensor> msg(K);
  for (int i : senders) msg[i] = source_embed.defined() ? h[i] + source_embed[i].to(dt) : h[i];
  // The last step only feeds OUT: aggregate its column alone.
  return {C, aggregate(last ? C.narrow(-1, L, 1) : C, msg, cfg.tau)};
}

void HModel::run_layers(int r, const Messages& agg, const at::Tensor& n, const at::Tensor& w,
                        std::vector<at::Tensor>& h, std::vector<at::Tensor>& act, const at::Tensor& live,
                        const at::Tensor& valid, StackState* state, const at::Tensor& lengths, bool stepping, bool autocast, at::Tensor* rms_in,
                        at::Tensor* rms_out) {
  const auto dt = h[0].scalar_type();
  const int64_t B = h[0].size(0), S = h[0].size(1), Sp = act[0].size(1);
  if (rms_in) {
    *rms_in = at::full({L}, std::numeric_limits<double>::quiet_NaN(), at::kDouble);
    *rms_out = rms_in->clone();
  }
  for (int j = 1; j <= L; ++j) {
    // A halted position (infer.halt_eps) is inactive from here on: zero input, nothing sent.
    auto aj = (cfg.doubly_stochastic ? at::ones({B, Sp}, live.options())
                                     : n.select(-1, j - 1) > 0)
                  .logical_and(live);
    act[j] = aj;
    auto X = normalise_messages(agg.M.select(-2, j - 1), n.narrow(-1, j - 1, 1), w.narrow(-1, j - 1, 1), cfg.norm);
    X = X * aj.to(dt).unsqueeze(-1);  // zero input at inactive positions
    {
      compat::AutocastScope layers(autocast);
      h[j] = run_node(r, j, X, aj, state, lengths, stepping);
    }
    if (rms_in) {
      auto pm = aj.expand({B, S}).logical_and(valid);
      (*rms_in)[j - 1] = rms_over(X, pm);
      (*rms_out)[j - 1] = rms_over(h[j], pm);
    }
  }
}

at::Tensor HModel::run(const at::Tensor& x_in, StackState* state, const at::Tensor& lengths, bool stepping) {
  const auto dt = x_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t B = x_in.size(0), S = x_in.size(1), K = L + 1;
  const bool per_seq = cfg.granularity == "per_sequence", ds = cfg.doubly_stochastic;
  const int64_t Sp = per_seq ? 1 : S;
  const bool infer = !is_training() || !at::GradMode::is_enabled();
  const bool aux = !infer && forward_context().aux;
  auto* rec = forward_context().routes;
  // Halting (§8): per row (position, or example for per_sequence), the same rule in a full
  // forward and in step decode; see the loop.
  const bool halting = infer && cfg.halt_eps > 0 && cfg.readout == "accumulate";
  const bool need_walk = aux || halting;
  // Routing and aggregation stay in fp32 (fp64 in tests); the layers run under the caller's autocast.
  const bool autocast = compat::cpu_autocast_enabled();
  compat::AutocastScope fp32(false);
  auto x = x_in.to(dt);
  auto bopt = x.options().dtype(at::kBool);
  auto valid = lengths.defined() ? at::arange(S, lengths.options()).view({1, S}) < lengths.view({B, 1})
                                 : at::ones({B, S}, bopt);
  auto valid_p = per_seq ? at::ones({B, 1}, bopt) : valid;  // routing rows

  std::vector<at::Tensor> h(K), act(K);  // sender states (B, S, d) and activity (B, Sp)
  auto live = at::ones({B, Sp}, bopt);    // rows not halted
  h[0] = x;
  act[0] = at::ones({B, Sp}, bopt);
  if (ds)  // every layer row is present at every step; before its first run a layer sends zeros
    for (int j = 1; j <= L; ++j) h[j] = at::zeros_like(x), act[j] = at::ones({B, Sp}, bopt);
  auto A = at::zeros_like(x);
  auto nO = at::zeros({B, Sp, 1}, x.options()), wO = at::zeros({B, Sp, 1}, x.options());
  auto rho = at::zeros({B, Sp, K}, x.options());
  rho.select(-1, 0).fill_(1.0);
  std::vector<at::Tensor> exits;
  ObjectiveSums objectives;
  RouteTrace trace;
  trace.L = L, trace.T = T, trace.per_sequence = per_seq;
  const int64_t calls0 = stats.calls, dense0 = stats.calls_dense;
  at::Tensor rms_in, rms_out;  // of the iteration just run (for the next step's trace entry)

  int steps = 0;
  for (int r = 0; r <= T; ++r) {
    const bool last = r == T;
    ++steps;
    at::Tensor smask;  // (B, Sp, K): sender i active at (b, s)
    auto [C, agg] = route(r, h, act, live, valid, infer, smask);
    const auto& M = agg.M;
    auto pad_layers = [&](const at::Tensor& t) { return last ? at::cat({at::zeros({B, Sp, L}, x.options()), t}, -1) : t; };
    auto n = pad_layers(agg.n), w = pad_layers(agg.w);
    if (cfg.readout == "accumulate" || (cfg.readout == "last" && last)) {
      A = A + M.select(-2, last ? 0 : L);
      nO = nO + n.narrow(-1, L, 1);
      wO = wO + w.narrow(-1, L, 1);
    }
    if (rec) {
      RouteStep st;
      st.C = C.detach().to(at::kDouble).cpu();
      st.sender = smask.cpu();
      st.counts = n.to(at::kDouble).cpu();
      st.rms_in = rms_in, st.rms_out = rms_out;
      trace.steps.push_back(st);
    }
    if (aux && !(last && cfg.flush_last) && fixed_routing.empty())
      objectives.add(C, smask.logical_and(valid_p.unsqueeze(-1)).to(dt));
    if (need_walk) {
      auto [e, next] = walk_step(rho, C);
      exits.push_back(e);
      rho = next;
    }
    if (halting && !last) {
      // A row whose walk has (nearly) left halts: from iteration r + 1 on it is inactive, so
      // its in-flight messages are dropped and its layers see zero input (zero_input).
      auto done = at::zeros_like(exits[0]);
      for (auto& e : exits) done = done + e;
      auto stop = live.logical_and(1.0 - done < cfg.halt_eps);
      stats.halted_rows += stop.logical_and(valid_p).sum().item<int64_t>();
      live = live.logical_and(stop.logical_not());
      // Nothing left in flight: skip the remaining iterations, unless a state is carried
      // (its stateful slots of later iterations must still see the zero inputs, as in a
      // forward over the whole sequence, so decode stays exact).
      if (!live.logical_and(valid_p).any().item<bool>() && !state) {
        ++stats.halted;
        break;
      }
    }
    if (last) break;
    run_layers(r + 1, agg, n, w, h, act, live, valid, state, lengths, stepping, autocast, rec ? &rms_in : nullptr,
               rec ? &rms_out : nullptr);
  }
  ++stats.forwards;
  stats.steps_run += steps;

  at::Tensor y;
  if (cfg.readout.rfind("node:", 0) == 0) {
    const int k = cfg.readout_node;
    y = h[k].defined() && act[k].defined() ? h[k] * act[k].to(dt).unsqueeze(-1) : at::zeros_like(x);
  } else {
    y = normalise_messages(A, nO, wO, cfg.norm);
  }
  if (aux) {
    auto vp = valid_p.to(dt);
    auto depth = (expected_depth(exits, T) * vp).sum() / vp.sum().clamp_min(1.0);
    add_aux_loss("hmodel_depth", depth / T, cfg.lambda_depth);
    objectives.emit(cfg);
  }
  if (rec) {
    trace.valid = valid_p.cpu();
    trace.calls = stats.calls - calls0;
    trace.calls_dense = stats.calls_dense - dense0;
    rec->push_back(std::move(trace));
  }
  return rmsnorm->forward(y);
}

}  // namespace dynarch

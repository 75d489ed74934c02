#include "model/config/hmodel_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/json_get.h"
#include "model/config/config.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void only_keys(const json& j, const std::set<std::string>& keys, const std::string& w) {
  if (!j.is_object()) fail(w + ": expected a JSON object");
  for (auto& [k, v] : j.items())
    if (!keys.count(k)) fail(w + ": unknown field \"" + k + "\"");
}

template <class T>
void get(const json& j, const char* k, T& dst, const std::string& w) {
  if (!j.contains(k)) return;
  try {
    dst = json_get<T>(j.at(k));
  } catch (const json::exception&) {
    fail(w + "." + k + ": wrong type (" + j.at(k).dump() + ")");
  }
}

void one_of(const std::string& v, const std::set<std::string>& ok, const std::string& w) {
  if (ok.count(v)) return;
  std::string list;
  for (auto& s : ok) list += (list.empty() ? "" : " | ") + s;
  fail(w + ": unknown value \"" + v + "\" (" + list + ")");
}

// config.json of a run directory or beside a safetensors file (null if none beside a file).
json source_config_of(const std::string& from, const std::string& w) {
  if (!fs::exists(from)) fail(w + ".from: " + from + " does not exist");
  std::vector<fs::path> cands;
  if (fs::is_directory(from)) {
    for (auto d : {fs::path(from), fs::path(from) / "checkpoint", fs::path(from) / "checkpoint.old"})
      cands.push_back(d / "config.json");
  } else {
    cands.push_back(fs::path(from).parent_path() / "config.json");
  }
  for (auto& p : cands) {
    if (!fs::exists(p)) continue;
    std::ifstream f(p);
    try {
      return json::parse(f);
    } catch (const json::exception& e) {
      fail(w + ".from: " + p.string() + " is not valid JSON: " + e.what());
    }
  }
  if (fs::is_directory(from)) fail(w + ".from: " + from + " holds no config.json (a run or checkpoint directory)");
  return nullptr;
}

std::string letter(const LayerSpec& l) {
  return std::string(1, l.mixer != 'f' && l.mlp ? (char)std::toupper(l.mixer) : l.mixer);
}

HModelNodeSpec parse_node(const json& e, const std::string& w, const std::vector<LayerSpec>& pool, int d) {
  HModelNodeSpec n;
  only_keys(e, {"at", "from", "layers", "prefix", "freeze", "adapter", "source_config", "d_model", "d_intermediate"}, w);
  if (!e.contains("at")) fail(w + ".at: missing (the 1-based node indices this entry applies to)");
  if (e["at"].is_number()) {
    int a = 0;
    get(e, "at", a, w);
    n.at = {a};
  } else {
    get(e, "at", n.at, w);
  }
  get(e, "from", n.from, w);
  get(e, "layers", n.layers, w);
  get(e, "prefix", n.prefix, w);
  get(e, "freeze", n.freeze, w);
  get(e, "adapter", n.adapter, w);
  get(e, "d_model", n.d_model, w);
  get(e, "d_intermediate", n.d_intermediate, w);
  if (e.contains("source_config")) n.source_config = e["source_config"];
  const int L = (int)pool.size();
  if (n.at.empty()) fail(w + ".at: empty");
  for (int j : n.at)
    if (j < 1 || j > L) fail(w + ".at: node " + std::to_string(j) + " is not in 1.." + std::to_string(L));
  one_of(n.adapter, {"none", "pad", "linear"}, w + ".adapter");
  if (!n.layers.empty() && n.from.empty()) fail(w + ".layers: needs \"from\" (the checkpoint to load them from)");
  if (!n.from.empty() && n.layers.empty())
    for (size_t i = 0; i < n.at.size(); ++i) n.layers.push_back((int)i);
  if (!n.from.empty() && n.layers.size() != n.at.size())
    fail(w + ".layers: " + std::to_string(n.layers.size()) + " source layers for " + std::to_string(n.at.size()) +
         " nodes");
  if (!n.from.empty() && n.source_config.is_null()) n.source_config = source_config_of(n.from, w);
  int dn = n.d_model > 0 ? n.d_model : d;
  if (!n.source_config.is_null()) {
    if (n.d_model > 0 || n.d_intermediate >= 0)
      fail(w + ": d_model/d_intermediate overrides conflict with the source model's config");
    auto sc = ModelConfig::from_json(n.source_config, w + ".source_config");
    const auto& src = sc.stages.back().main;
    dn = sc.d_model.back();
    for (size_t i = 0; i < n.at.size(); ++i) {
      const int k = n.layers.empty() ? (int)i : n.layers[i];
      if (k < 0 || k >= (int)src.size())
        fail(w + ".layers: source layer " + std::to_string(k) + " does not exist (the source has " +
             std::to_string(src.size()) + ")");
      const auto& a = src[k];
      const auto& b = pool[n.at[i] - 1];
      if (!(a == b))
        fail(w + ": node " + std::to_string(n.at[i]) + " is a '" + letter(b) + "' layer in the layout but source layer " +
             std::to_string(k) + " is a '" + letter(a) + "' layer");
    }
  }
  if (dn != d && n.adapter == "none")
    fail(w + ": node " + std::to_string(n.at[0]) + " has width " + std::to_string(dn) + " but the H-Model has d = " +
         std::to_string(d) + "; set \"adapter\": \"pad\" or \"linear\"");
  if (n.adapter == "pad" && dn < d)
    fail(w + ".adapter: pad needs a node width >= d (" + std::to_string(dn) + " < " + std::to_string(d) +
         "); use linear");
  return n;
}

// The "routing" section; records which defaults it overrode (for doubly_stochastic).
void parse_routing(HModelConfig& c, const json& r, const std::string& wr, bool& norm_set, bool& inject_set) {
  only_keys(r, {"granularity", "sharpen", "power_of", "alpha", "topk", "straight_through", "norm", "tau", "allow_self",
                "inject_input", "source_embed", "doubly_stochastic", "sinkhorn_iters", "sinkhorn_eps"},
            wr);
  get(r, "granularity", c.granularity, wr);
  get(r, "sharpen", c.sharpen, wr);
  get(r, "power_of", c.power_of, wr);
  if (r.contains("alpha") && r["alpha"].is_object()) {
    const auto& a = r["alpha"];
    only_keys(a, {"schedule", "start", "end", "steps"}, wr + ".alpha");
    get(a, "schedule", c.alpha_schedule, wr + ".alpha");
    get(a, "start", c.alpha_start, wr + ".alpha");
    get(a, "end", c.alpha_end, wr + ".alpha");
    get(a, "steps", c.alpha_steps, wr + ".alpha");
    one_of(c.alpha_schedule, {"constant", "linear", "exp"}, wr + ".alpha.schedule");
    if (c.alpha_start <= 0 || c.alpha_end <= 0) fail(wr + ".alpha: start and end must be > 0");
    if (c.alpha_schedule != "constant" && c.alpha_steps < 1) fail(wr + ".alpha.steps: must be >= 1");
    c.alpha = c.alpha_schedule == "constant" ? c.alpha_start : c.alpha_end;
  } else {
    get(r, "alpha", c.alpha, wr);
    if (!(c.alpha > 0)) fail(wr + ".alpha: must be > 0, got " + json(c.alpha).dump());
    c.alpha_start = c.alpha_end = c.alpha;
  }
  get(r, "topk", c.topk, wr);
  get(r, "straight_through", c.straight_through, wr);
  norm_set = r.contains("norm");
  inject_set = r.contains("inject_input");
  get(r, "norm", c.norm, wr);
  get(r, "tau", c.tau, wr);
  get(r, "allow_self", c.allow_self, wr);
  get(r, "inject_input", c.inject_input, wr);
  get(r, "source_embed", c.source_embed, wr);
  get(r, "doubly_stochastic", c.doubly_stochastic, wr);
  get(r, "sinkhorn_iters", c.sinkhorn_iters, wr);
  get(r, "sinkhorn_eps", c.sinkhorn_eps, wr);
  one_of(c.granularity, {"per_token", "per_sequence"}, wr + ".granularity");
  one_of(c.sharpen, {"softmax", "power", "sigmoid"}, wr + ".sharpen");
  one_of(c.power_of, {"sigmoid", "softmax"}, wr + ".power_of");
  one_of(c.norm, {"count", "weighted", "none"}, wr + ".norm");
  if (c.topk < 0 || c.topk > c.L + 1)
    fail(wr + ".topk: must be in [1, L+1] = [1, " + std::to_string(c.L + 1) + "] (0 = off), got " +
         std::to_string(c.topk));
  if (c.tau < 0) fail(wr + ".tau: must be >= 0");
  if (c.sinkhorn_iters < 1) fail(wr + ".sinkhorn_iters: must be >= 1");
  if (c.sinkhorn_eps < 0) fail(wr + ".sinkhorn_eps: must be >= 0");
  if (c.straight_through && c.topk == 0) fail(wr + ".straight_through: needs topk");
}

void parse_readout(HModelConfig& c, const json& r, const std::string& w, bool& readout_set) {
  only_keys(r, {"mode", "flush_last"}, w + ".readout");
  readout_set = r.contains("mode");
  get(r, "mode", c.readout, w + ".readout");
  get(r, "flush_last", c.flush_last, w + ".readout");
  if (c.readout.rfind("node:", 0) == 0) {
    try {
      size_t used = 0;
      c.readout_node = std::stoi(c.readout.substr(5), &used);
      if (used != c.readout.size() - 5) throw std::invalid_argument("");
    } catch (const std::exception&) {
      fail(w + ".readout.mode: \"" + c.readout + "\" is not node:k");
    }
    if (c.readout_node < 1 || c.readout_node > c.L)
      fail(w + ".readout.mode: node " + std::to_string(c.readout_node) + " is not in 1.." + std::to_string(c.L));
  } else {
    one_of(c.readout, {"accumulate", "last"}, w + ".readout.mode");
  }
}

void parse_infer(HModelConfig& c, const json& in, const std::string& wi) {
  only_keys(in, {"topk", "threshold", "halt_eps", "sparse", "skip_semantics"}, wi);
  get(in, "topk", c.infer_topk, wi);
  get(in, "threshold", c.infer_threshold, wi);
  get(in, "halt_eps", c.halt_eps, wi);
  get(in, "sparse", c.sparse, wi);
  get(in, "skip_semantics", c.skip_semantics, wi);
  if (c.infer_topk < 0 || c.infer_topk > c.L + 1)
    fail(wi + ".topk: must be in [1, L+1] = [1, " + std::to_string(c.L + 1) + "] (0 = off)");
  if (c.infer_threshold < 0 || c.infer_threshold >= 1) fail(wi + ".threshold: must be in [0, 1)");
  if (c.halt_eps < 0 || c.halt_eps >= 1) fail(wi + ".halt_eps: must be in [0, 1) (0 = off)");
  one_of(c.skip_semantics, {"zero_input", "hold_state"}, wi + ".skip_semantics");
  if (c.skip_semantics == "hold_state")
    fail(wi + ".skip_semantics: hold_state is not implemented (it needs masked keys / held states inside every "
              "layer type, in training too); use zero_input");
}

// Doubly-stochastic routing fixes norm, injection and readout; contradicting settings are errors.
void apply_doubly_stochastic(HModelConfig& c, const std::string& w, bool norm_set, bool inject_set, bool readout_set) {
  const std::string wr = w + ".routing";
  if (norm_set && c.norm != "none") fail(wr + ".norm: doubly_stochastic routing uses norm = none");
  if (inject_set && !c.inject_input) fail(wr + ".inject_input: doubly_stochastic routing needs inject_input = true");
  if (readout_set && c.readout != "last") fail(w + ".readout.mode: doubly_stochastic routing reads out last");
  if (c.sharpen == "sigmoid")
    fail(wr + ".sharpen: doubly_stochastic routing is a Sinkhorn projection (softmax: alpha on the logits; power: "
              "alpha on the Sinkhorn output)");
  if (c.topk) fail(wr + ".topk: not combinable with doubly_stochastic routing");
  if (c.flush_last) fail(w + ".readout.flush_last: not combinable with doubly_stochastic routing");
  c.norm = "none";
  c.inject_input = true;
  c.readout = "last";
}

}  // namespace

HModelConfig HModelConfig::from_json(const json& j, const std::string& w, const std::vector<LayerSpec>& pool, int d) {
  HModelConfig c;
  only_keys(j, {"T", "routing", "head", "readout", "loss", "infer", "nodes"}, w);
  c.L = (int)pool.size();
  if (c.L < 1) fail(w + ": the layer pool is empty (L < 1)");
  c.T = c.L;
  get(j, "T", c.T, w);
  if (c.T < 1) fail(w + ".T: the number of iterations must be >= 1, got " + std::to_string(c.T));
  bool norm_set = false, inject_set = false, readout_set = false;
  if (j.contains("routing")) parse_routing(c, j["routing"], w + ".routing", norm_set, inject_set);
  if (j.contains("head")) {
    const auto& h = j["head"];
    only_keys(h, {"init", "init_c", "hidden"}, w + ".head");
    get(h, "init", c.head_init, w + ".head");
    get(h, "init_c", c.head_init_c, w + ".head");
    get(h, "hidden", c.head_hidden, w + ".head");
    one_of(c.head_init, {"uniform", "chain", "self_next"}, w + ".head.init");
    if (c.head_hidden < 0) fail(w + ".head.hidden: must be >= 0 (0 = one linear map)");
  }
  if (j.contains("readout")) parse_readout(c, j["readout"], w, readout_set);
  if (j.contains("loss")) {
    const auto& l = j["loss"];
    const std::string wl = w + ".loss";
    only_keys(l, {"lambda_depth", "lambda_self", "lambda_ent", "lambda_bal"}, wl);
    get(l, "lambda_depth", c.lambda_depth, wl);
    get(l, "lambda_self", c.lambda_self, wl);
    get(l, "lambda_ent", c.lambda_ent, wl);
    get(l, "lambda_bal", c.lambda_bal, wl);
    for (double v : {c.lambda_depth, c.lambda_self, c.lambda_ent, c.lambda_bal})
      if (v < 0) fail(wl + ": every lambda must be >= 0");
  }
  if (j.contains("infer")) parse_infer(c, j["infer"], w + ".infer");
  if (c.doubly_stochastic) apply_doubly_stochastic(c, w, norm_set, inject_set, readout_set);
  if (j.contains("nodes")) {
    if (!j["nodes"].is_array()) fail(w + ".nodes: expected a list of node entries");
    std::set<int> seen;
    for (size_t i = 0; i < j["nodes"].size(); ++i) {
      auto n = parse_node(j["nodes"][i], w + ".nodes[" + std::to_string(i) + "]", pool, d);
      for (int a : n.at)
        if (!seen.insert(a).second)
          fail(w + ".nodes[" + std::to_string(i) + "].at: node " + std::to_string(a) + " appears in two entries");
      c.nodes.push_back(n);
    }
  }
  return c;
}

json HModelConfig::to_json() const {
  json routing{{"granularity", granularity}, {"sharpen", sharpen}, {"power_of", power_of}, {"topk", topk},
               {"straight_through", straight_through}, {"norm", norm}, {"tau", tau}, {"allow_self", allow_self},
               {"inject_input", inject_input}, {"source_embed", source_embed},
               {"doubly_stochastic", doubly_stochastic}, {"sinkhorn_iters", sinkhorn_iters},
               {"sinkhorn_eps", sinkhorn_eps}};
  if (alpha_schedule == "constant") routing["alpha"] = alpha;
  else
    routing["alpha"] = {{"schedule", alpha_schedule}, {"start", alpha_start}, {"end", alpha_end}, {"steps", alpha_steps}};
  json j{{"T", T},
         {"routing", routing},
         {"head", {{"init", head_init}, {"init_c", head_init_c}, {"hidden", head_hidden}}},
         {"readout", {{"mode", readout}, {"flush_last", flush_last}}},
         {"loss", {{"lambda_depth", lambda_depth}, {"lambda_self", lambda_self}, {"lambda_ent", lambda_ent},
                   {"lambda_bal", lambda_bal}}},
         {"infer", {{"topk", infer_topk}, {"threshold", infer_threshold}, {"halt_eps", halt_eps}, {"sparse", sparse},
                    {"skip_semantics", skip_semantics}}}};
  if (!nodes.empty()) {
    j["nodes"] = json::array();
    for (auto& n : nodes) {
      json e{{"at", n.at}, {"freeze", n.freeze}, {"adapter", n.adapter}};
      if (!n.from.empty()) e.update({{"from", n.from}, {"layers", n.layers}, {"prefix", n.prefix}});
      if (!n.source_config.is_null()) e["source_config"] = n.source_config;
      if (n.d_model > 0) e["d_model"] = n.d_model;
      if (n.d_intermediate >= 0) e["d_intermediate"] = n.d_intermediate;
      j["nodes"].push_back(e);
    }
  }
  return j;
}

double HModelConfig::alpha_at(int64_t step) const {
  if (alpha_schedule == "constant") return alpha;
  if (step < 0 || step >= alpha_steps) return alpha_end;
  const double f = (double)step / (double)alpha_steps;
  if (alpha_schedule == "linear") return alpha_start + f * (alpha_end - alpha_start);
  return alpha_start * std::pow(alpha_end / alpha_start, f);  // exp: geometric interpolation
}

const HModelNodeSpec* HModelConfig::node_spec(int j) const {
  for (auto& n : nodes)
    for (int a : n.at)
      if (a == j) return &n;
  return nullptr;
}

}  // namespace dynarch

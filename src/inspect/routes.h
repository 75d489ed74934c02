// `dynarch routes`: the routing of an H-Model over an input, per step
// (hmodel.md §11): JSON export, DOT (collapsed graph + trellis), SVG (trellis +
// per-step heat maps), printed summary statistics; and the JS divergence
// between the routing distributions of two input sets.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "model/hmodel/hmodel_metrics.h"
#include "model/lm.h"

namespace dynarch {

struct RoutesView {
  std::string model, text;
  int L = 0, T = 0;
  std::string granularity;
  std::vector<std::string> node_types;  // per layer node: its layout letter
  RouteTrace trace;                     // B = 1
  RouteStats stats;
  // Per H-Model position: byte offset in `text` (-1 = BOS) and byte length.
  std::vector<int64_t> offset, length;
};

// Runs BOS + text through the model (embeddings + backbone, no task head).
RoutesView compute_routes(ByteLM& model, const std::string& text, const std::string& model_name);
// Statistics over a set of inputs, each run alone.
RouteStats route_stats(ByteLM& model, const std::vector<std::string>& inputs);

nlohmann::json routes_json(const RoutesView& v);
std::string routes_dot(const RoutesView& v);
std::string routes_svg(const RoutesView& v);
// Expected depth, exit profile, per-layer usage, self-loop mass, entropy, RMS per step.
std::string routes_summary(const RouteStats& s, const std::vector<std::string>& node_types);
nlohmann::json summary_json(const RouteStats& s);

// Inputs of a set: one per line; .jsonl lines take "text", or "theory" + "\nQ: " + "question".
std::vector<std::string> read_input_set(const std::string& path, int64_t max_bytes, int64_t max_inputs);

struct RoutesOptions {
  std::string model, text, file, json_out, dot_out, svg_out, device = "auto";
  std::vector<std::string> compare;  // two input-set files
  int64_t max_bytes = 8192, max_inputs = 1000;
};
// The sub-command: prints the summary (or the comparison) and writes the exports.
void routes_command(const RoutesOptions& o);

}  // namespace dynarch

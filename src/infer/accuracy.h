// Accuracy of a classifier on labeled items: overall, by label and by a group
// field of the items (the proof depth for the reasoning dataset).
#pragma once
#include <nlohmann/json.hpp>

#include <array>
#include <map>

#include "data/labeled.h"
#include "model/lm.h"

namespace dynarch {

// Orders "2" before "10" when both are integers, else as text.
struct GroupOrder {
  bool operator()(const std::string& a, const std::string& b) const;
};

struct ClsEval {
  std::vector<std::string> labels;
  std::string group_key;
  int64_t n = 0, correct = 0;
  double nll = 0;                                                // summed cross-entropy (nats)
  std::vector<std::array<int64_t, 2>> by_label;                  // {correct, n} per class
  std::map<std::string, std::array<int64_t, 2>, GroupOrder> by_group;
  double accuracy() const { return n ? (double)correct / n : 0.0; }
  double loss() const { return n ? nll / n : 0.0; }
  // {"n", "accuracy", "loss", "by_label": {name: {"n", "accuracy"}}, "by_<group_key>": {...}}
  nlohmann::ordered_json to_json() const;
  std::string table() const;
};

// Items `idx` (empty = all), batched by length (results do not depend on the
// batching: padding never reaches the pooled features).
ClsEval evaluate_classifier(ByteLM& model, const LabeledSet& set, std::vector<int64_t> idx, int64_t batch, bool bf16,
                            bool progress = false);

// dynarch eval for a classifier: prints the table and one JSON line; writes the
// JSON to json_out if given.
void report_classifier(ByteLM& model, const std::string& file, const std::string& group_key,
                       const std::string& json_out, int64_t batch, bool bf16, bool progress);

}  // namespace dynarch

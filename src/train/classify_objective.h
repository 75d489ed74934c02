// The sequence-classifier objective (config task "classify", e.g. the
// reasoning dataset): cross-entropy on the cls_head logits of labeled JSONL
// items drawn epoch by epoch, validated as accuracy on a fixed subset of the
// test items. Also the accuracy evaluation behind `dynarch eval`.
#pragma once
#include <nlohmann/json.hpp>

#include <array>
#include <map>

#include "data/labeled.h"
#include "model/lm.h"
#include "train/objective.h"
#include "train/options.h"

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

class ClassifierObjective : public Objective {
 public:
  // o.data is a directory with train.jsonl and test.jsonl; o.seq_len bounds
  // every input (BOS + bytes); o.eval_windows = validation items.
  ClassifierObjective(const TrainOptions& o, const TaskConfig& task);
  at::Tensor loss(ByteLM& model, int64_t step, int64_t micro, int64_t accum, StepMetrics& m) override;
  std::vector<double> validation_sums(ByteLM& model) override;
  nlohmann::json validation_metrics(const std::vector<double>& sums) const override;
  double units_per_step() const override { return (double)o_.batch * o_.accum; }
  std::string rate_key() const override { return "examples_per_s"; }
  std::string progress(const Metrics& ema, const nlohmann::json& val, double rate) const override;
  std::string summary(const nlohmann::json& val) const override;

 private:
  TrainOptions o_;
  LabeledSet train_, test_;
  std::vector<int64_t> val_idx_;
  EpochSampler sampler_;
};

}  // namespace dynarch

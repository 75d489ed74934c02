#include "train/classify_objective.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "core/compat.h"
#include "core/error.h"
#include "core/progress.h"
#include "train/step_metrics.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
bool as_int(const std::string& s, long long& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtoll(s.c_str(), &end, 10);
  return *end == 0;
}
}  // namespace

bool GroupOrder::operator()(const std::string& a, const std::string& b) const {
  long long x, y;
  if (as_int(a, x) && as_int(b, y)) return x < y;
  return a < b;
}

nlohmann::ordered_json ClsEval::to_json() const {
  auto cell = [](const std::array<int64_t, 2>& c) {
    return nlohmann::ordered_json{{"n", c[1]}, {"accuracy", c[1] ? (double)c[0] / c[1] : 0.0}};
  };
  nlohmann::ordered_json j{{"n", n}, {"accuracy", accuracy()}, {"loss", loss()}};
  auto& bl = j["by_label"] = nlohmann::ordered_json::object();
  for (size_t k = 0; k < labels.size(); ++k) bl[labels[k]] = cell(by_label[k]);
  auto& bg = j["by_" + group_key] = nlohmann::ordered_json::object();
  for (auto& [g, c] : by_group) bg[g] = cell(c);
  return j;
}

std::string ClsEval::table() const {
  std::string s;
  char buf[160];
  auto section = [&](const std::string& head, const std::string& key, const std::array<int64_t, 2>& c) {
    if (!head.empty()) {
      std::snprintf(buf, sizeof buf, "%-12s %8s %9s\n", head.c_str(), "n", "accuracy");
      s += buf;
    }
    std::snprintf(buf, sizeof buf, "%-12s %8lld %9.4f\n", key.c_str(), (long long)c[1],
                  c[1] ? (double)c[0] / c[1] : 0.0);
    s += buf;
  };
  section("", "all", {correct, n});
  for (size_t k = 0; k < labels.size(); ++k) section(k == 0 ? "label" : "", labels[k], by_label[k]);
  bool first = true;
  for (auto& [g, c] : by_group) section(first ? group_key : "", g, c), first = false;
  return s;
}

ClsEval evaluate_classifier(ByteLM& model, const LabeledSet& set, std::vector<int64_t> idx, int64_t batch, bool bf16,
                            bool progress) {
  check(batch >= 1, "--batch must be >= 1");
  if (idx.empty())
    for (int64_t i = 0; i < set.size(); ++i) idx.push_back(i);
  // Similar lengths together: less padding per batch.
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return set.items[a].text.size() < set.items[b].text.size(); });
  torch::NoGradGuard ng;
  compat::AutocastScope ac(bf16);
  ClsEval r;
  r.labels = set.labels;
  r.group_key = set.group_key;
  r.by_label.assign(set.labels.size(), {0, 0});
  Progress bar("eval", idx.size(), progress);
  for (size_t i = 0; i < idx.size(); i += batch) {
    std::vector<int64_t> rows(idx.begin() + i, idx.begin() + std::min(idx.size(), i + batch));
    auto b = make_cls_batch(set, rows);
    auto logits = model.classify(b.ids, b.lengths).to(at::kFloat);
    r.nll += torch::nn::functional::cross_entropy(
                 logits, b.labels.to(logits.device()), torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                 .item<double>();
    auto pred = logits.argmax(-1).to(at::kCPU).contiguous();
    const int64_t* pp = pred.data_ptr<int64_t>();
    for (size_t k = 0; k < rows.size(); ++k) {
      const auto& it = set.items[rows[k]];
      const int64_t ok = pp[k] == it.label;
      r.correct += ok;
      ++r.n;
      r.by_label[it.label][0] += ok, ++r.by_label[it.label][1];
      auto& g = r.by_group[it.group];
      g[0] += ok, ++g[1];
    }
    bar.update(i + rows.size(), "acc " + std::to_string(r.accuracy()));
  }
  bar.finish("acc " + std::to_string(r.accuracy()));
  check_finite(r.nll, "the classifier NLL over " + std::to_string(r.n) + " items");
  return r;
}

namespace {
LabeledSet load_split(const TrainOptions& o, const TaskConfig& task, const char* name) {
  const fs::path dir(o.data);
  check(fs::is_directory(dir) && fs::exists(dir / "train.jsonl") && fs::exists(dir / "test.jsonl"),
        "--data: a classifier trains on a directory with train.jsonl and test.jsonl (dynarch reasoning --out DIR), "
        "got " + o.data);
  return load_labeled((dir / name).string(), task.labels);
}
}  // namespace

ClassifierObjective::ClassifierObjective(const TrainOptions& o, const TaskConfig& task)
    : o_(o), train_(load_split(o, task, "train.jsonl")), test_(load_split(o, task, "test.jsonl")),
      val_idx_(spread_indices(test_.size(), o.eval_windows)), sampler_(train_.size(), o.seed) {
  train_.check_fits(o.seq_len, "--seq-len");
}

at::Tensor ClassifierObjective::loss(ByteLM& model, int64_t step, int64_t micro, int64_t accum, StepMetrics& m) {
  // This rank's slice of the global micro-batch of batch x world rows.
  auto rows = sampler_.batch(step, micro, accum, o_.batch * world_);
  rows = std::vector<int64_t>(rows.begin() + rank_ * o_.batch, rows.begin() + (rank_ + 1) * o_.batch);
  auto b = make_cls_batch(train_, rows);
  at::Tensor logits;
  {
    compat::AutocastScope ac(o_.dtype == "bf16");
    logits = model.classify(b.ids, b.lengths).to(at::kFloat);
  }
  const auto labels = b.labels.to(logits.device());
  auto loss = torch::nn::functional::cross_entropy(logits, labels);
  m.add("loss", loss);
  m.add("acc", logits.argmax(-1).eq(labels).sum(), (double)o_.batch);
  return loss;
}

std::vector<double> ClassifierObjective::validation_sums(ByteLM& model) {
  std::vector<int64_t> mine;  // every world-th item, from this rank's index
  for (size_t i = rank_; i < val_idx_.size(); i += world_) mine.push_back(val_idx_[i]);
  if (mine.empty()) return {0.0, 0.0, 0.0};
  auto r = evaluate_classifier(model, test_, mine, o_.batch, o_.dtype == "bf16");
  return {(double)r.correct, (double)r.n, r.nll};
}

json ClassifierObjective::validation_metrics(const std::vector<double>& s) const {
  return {{"val_acc", s[1] > 0 ? s[0] / s[1] : 0.0}, {"val_loss", s[1] > 0 ? s[2] / s[1] : 0.0}};
}

std::string ClassifierObjective::progress(const Metrics& ema, const json& val, double rate) const {
  return fmt::format("loss {:.3f} | acc {:.3f} | val acc {} | {:.1f} ex/s", ema.at("loss"), ema.at("acc"),
                     val.is_null() ? std::string("-") : fmt::format("{:.3f}", val["val_acc"].get<double>()), rate);
}

std::string ClassifierObjective::summary(const json& val) const {
  return fmt::format("val acc {:.4f}", val.is_null() ? -1.0 : val["val_acc"].get<double>());
}

}  // namespace dynarch

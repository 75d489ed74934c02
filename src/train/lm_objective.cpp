#include "train/lm_objective.h"

#include <torch/torch.h>

#include "core/compat.h"
#include "core/error.h"
#include "core/progress.h"
#include "train/step_metrics.h"

#include <fmt/format.h>

namespace dynarch {

at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}).to(at::kFloat), targets.reshape({-1}).to(logits.device()),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1));
}

EvalResult evaluate(ByteLM& model, const ByteSpan& span, const std::vector<int64_t>& offsets, int64_t L,
                    int64_t batch, bool bf16, bool progress) {
  torch::NoGradGuard ng;
  compat::AutocastScope ac(bf16);
  EvalResult r;
  Progress bar("eval", offsets.size(), progress);
  for (size_t i = 0; i < offsets.size(); i += batch) {
    std::vector<int64_t> chunk(offsets.begin() + i, offsets.begin() + std::min(offsets.size(), i + batch));
    auto b = windows_at(span, chunk, L);
    auto logits = model.forward(b.inputs);
    auto nll = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), b.targets.reshape({-1}).to(logits.device()),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1).reduction(torch::kSum));
    r.nats += nll.item<double>();
    r.bytes += b.targets.ge(0).sum().item<int64_t>();
    bar.update(i + chunk.size(), "bpb " + std::to_string(r.bpb()));
  }
  bar.finish("bpb " + std::to_string(r.bpb()));
  check_finite(r.nats, "the NLL over " + span.name);
  return r;
}

LmObjective::LmObjective(const TrainOptions& o)
    : o_(o), corpus_(Corpus::open(o.data, o.seq_len)),
      val_offsets_(spread_offsets(corpus_.val.size, o.seq_len, o.eval_windows)) {}

at::Tensor LmObjective::loss(ByteLM& model, int64_t step, int64_t micro, int64_t accum, StepMetrics& m) {
  auto b = sample_batch(corpus_.train, o_.seed, step, micro, (int64_t)rank_ * o_.batch, o_.batch, o_.seq_len);
  at::Tensor loss;
  {
    compat::AutocastScope ac(o_.dtype == "bf16");
    loss = lm_loss(model.forward(b.inputs), b.targets);
  }
  m.add("loss", loss);
  m.add("bpb", loss, std::log(2.0));
  return loss;
}

std::vector<double> LmObjective::validation_sums(ByteLM& model) {
  std::vector<int64_t> mine;  // every world-th window, from this rank's index
  for (size_t i = rank_; i < val_offsets_.size(); i += world_) mine.push_back(val_offsets_[i]);
  if (mine.empty()) return {0.0, 0.0};
  auto r = evaluate(model, corpus_.val, mine, o_.seq_len, o_.batch, o_.dtype == "bf16");
  return {r.nats, (double)r.bytes};
}

nlohmann::json LmObjective::validation_metrics(const std::vector<double>& s) const {
  return {{"val_bpb", EvalResult{s[0], (int64_t)s[1]}.bpb()}};
}

std::string LmObjective::progress(const Metrics& ema, const nlohmann::json& val, double rate) const {
  return fmt::format("loss {:.3f} | bpb {:.3f} | val {} | {:.0f} B/s", ema.at("loss"), ema.at("loss") / std::log(2.0),
                     val.is_null() ? std::string("-") : fmt::format("{:.3f}", val["val_bpb"].get<double>()), rate);
}

std::string LmObjective::summary(const nlohmann::json& val) const {
  return fmt::format("val bpb {:.4f}", val.is_null() ? -1.0 : val["val_bpb"].get<double>());
}

}  // namespace dynarch

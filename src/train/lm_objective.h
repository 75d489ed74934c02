// The byte language-model objective: next-byte cross-entropy on windows of a
// corpus, validated (and evaluated by `dynarch eval`) as bits per byte over
// fixed windows, each predicted after a BOS.
#pragma once
#include "data/corpus.h"
#include "model/lm.h"
#include "train/objective.h"
#include "train/options.h"

namespace dynarch {

struct EvalResult {
  double nats = 0;
  int64_t bytes = 0;
  double bpb() const { return bytes ? nats / bytes / std::log(2.0) : 0.0; }
};

// Mean NLL over windows of L bytes at `offsets`, each predicted after a BOS.
EvalResult evaluate(ByteLM& model, const ByteSpan& span, const std::vector<int64_t>& offsets, int64_t L,
                    int64_t batch, bool bf16, bool progress = false);
// Token-mean cross-entropy (nats) of logits (B, L, V) against targets (B, L); -1 is ignored.
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets);

class LmObjective : public Objective {
 public:
  // Opens o.data (a corpus directory or one file) and fixes the validation windows.
  explicit LmObjective(const TrainOptions& o);
  at::Tensor loss(ByteLM& model, int64_t step, int64_t micro, int64_t accum, StepMetrics& m) override;
  std::vector<double> validation_sums(ByteLM& model) override;
  nlohmann::json validation_metrics(const std::vector<double>& sums) const override;
  double units_per_step() const override { return (double)o_.batch * o_.seq_len * o_.accum; }
  std::string rate_key() const override { return "bytes_per_s"; }
  std::string progress(const Metrics& ema, const nlohmann::json& val, double rate) const override;
  std::string summary(const nlohmann::json& val) const override;

 private:
  TrainOptions o_;
  Corpus corpus_;
  std::vector<int64_t> val_offsets_;
};

}  // namespace dynarch

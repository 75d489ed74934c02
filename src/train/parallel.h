// Data parallelism for the training loop (issue #17): the process group of
// this run, the gradient reducer, ZeRO-1 (optimizer state sharded by
// parameter, updated parameters broadcast by their owners, state gathered at
// rank 0 for checkpoints) and the cross-rank sums of the loop's statistics.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dist/group.h"
#include "dist/reducer.h"
#include "model/lm.h"
#include "train/adamw.h"

namespace dynarch {

class DataParallel {
 public:
  // Null when RANK / WORLD_SIZE are not set: a single process, no process group.
  static std::unique_ptr<DataParallel> from_environment();
  explicit DataParallel(const dist::Env& env);

  int rank() const { return group_.rank(); }
  int world() const { return group_.world(); }
  dist::Group& group() { return group_; }

  // Every rank must train the same thing: an error naming the first rank whose
  // `text` (a config or options dump) differs from rank 0's.
  void check_same(const std::string& what, const std::string& text);
  // Rank 0's parameters to every rank, the gradient hooks, and (zero) the
  // optimizer sharding.
  void start(ByteLM& model, AdamW& opt, bool zero);
  void before_backward(bool last_micro) { reducer_->prepare(last_micro); }
  void after_backward() { reducer_->finish(); }
  // ZeRO: every parameter from its owner after the optimizer step.
  void after_step();
  std::vector<double> sum(const std::vector<double>& v) { return group_.sum(v); }
  // The optimizer state of all ranks at rank 0 (others: empty); collective.
  std::vector<std::pair<std::string, at::Tensor>> gather_state();

 private:
  dist::Group group_;
  std::unique_ptr<dist::GradReducer> reducer_;
  AdamW* opt_ = nullptr;
  bool zero_ = false;
};

}  // namespace dynarch

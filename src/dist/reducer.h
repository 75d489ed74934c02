// Data-parallel gradient averaging as PyTorch's DDP reducer does it:
// parameters in buckets (reverse registration order, about the order their
// gradients become ready), each bucket's all-reduce launched from autograd
// hooks while the backward still runs, buckets launched strictly in index
// order so every rank issues the same collectives in the same order whatever
// its graph; gradients averaged once at the end. Parameters without a
// gradient this step (unused H-Model nodes, frozen layers) count as zeros.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <mutex>
#include <vector>

#include "dist/group.h"

namespace torch::autograd {
struct Node;
}

namespace dynarch::dist {

class GradReducer {
 public:
  GradReducer(Group& g, const std::vector<at::Tensor>& params, int64_t bucket_bytes = 4 << 20);
  ~GradReducer();  // removes its hooks
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;
  // Before a backward: `sync` = this backward completes the step's gradients
  // (the last micro-batch); otherwise the hooks only accumulate.
  void prepare(bool sync);
  // After the last backward: launches what is left, waits, averages (1/world).
  void finish();
  int64_t buckets() const { return (int64_t)buckets_.size(); }

 private:
  struct Bucket {
    std::vector<int64_t> params;  // indices into params_
    at::Tensor flat;              // fp32 buffer of all their gradients
    int64_t pending = 0;          // gradients not ready yet this step
    Pending work;
  };
  void on_ready(int64_t param);
  void launch_ready();  // launches buckets in order while the next is ready
  void launch(Bucket& b);

  Group& group_;
  // The gradient accumulators (kept alive with their hooks) and the hook keys.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
  std::vector<at::Tensor> params_;
  std::vector<int64_t> bucket_of_;
  std::vector<Bucket> buckets_;
  std::vector<bool> ready_;
  size_t next_ = 0;  // next bucket to launch
  bool sync_ = false;
  std::mutex mu_;
};

}  // namespace dynarch::dist

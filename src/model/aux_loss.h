// Generic channel for extra training objectives: while a collector is installed
// (RAII, this thread), models append named loss terms with their weight during
// forward; the trainer adds sum(weight * value) to the task loss and logs each
// value. Terms with weight 0 are logged only (monitoring).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace dynarch {

struct AuxTerm {
  std::string name;
  at::Tensor value;  // scalar, differentiable
  double weight;
};

class AuxLossCollector {
 public:
  AuxLossCollector() : prev_(slot()) { slot() = this; }
  ~AuxLossCollector() { slot() = prev_; }
  AuxLossCollector(const AuxLossCollector&) = delete;
  AuxLossCollector& operator=(const AuxLossCollector&) = delete;

  std::vector<AuxTerm> terms;
  static AuxLossCollector* active() { return slot(); }
  // sum(weight * value) over weighted terms; a zero scalar if there are none.
  at::Tensor total() const {
    at::Tensor t;
    for (auto& a : terms)
      if (a.weight != 0) t = t.defined() ? t + a.weight * a.value : a.weight * a.value;
    return t.defined() ? t : at::zeros({}, at::kFloat);
  }

 private:
  static AuxLossCollector*& slot() {
    thread_local AuxLossCollector* s = nullptr;
    return s;
  }
  AuxLossCollector* prev_;
};

// Appends a term if a collector is installed.
inline void add_aux_loss(const std::string& name, const at::Tensor& value, double weight) {
  if (auto* c = AuxLossCollector::active()) c->terms.push_back({name, value, weight});
}

}  // namespace dynarch

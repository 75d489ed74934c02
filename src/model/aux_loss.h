// Extra training objectives (H-Model routing terms, ...): while a collector is
// alive, models append named loss terms with their weight during forward
// (add_aux_loss, core/forward_context.h); the training loop adds
// sum(weight * value) to the task loss and logs each value.
#pragma once
#include "core/forward_context.h"

namespace dynarch {

class AuxLossCollector {
 public:
  std::vector<AuxTerm> terms;
  // sum(weight * value) over weighted terms; a zero scalar if there are none.
  at::Tensor total() const {
    at::Tensor t;
    for (auto& a : terms)
      if (a.weight != 0) t = t.defined() ? t + a.weight * a.value : a.weight * a.value;
    return t.defined() ? t : at::zeros({}, at::TensorOptions(at::kFloat).device(forward_context().device));
  }

 private:
  ForwardScope scope_{[this](ForwardContext& c) { c.aux = &terms; }};
};

}  // namespace dynarch

#include "core/forward_context.h"

namespace dynarch {

namespace {
ForwardContext& current() {
  thread_local ForwardContext c;
  return c;
}
}  // namespace

const ForwardContext& forward_context() { return current(); }

void ForwardScope::install(const ForwardContext& c) { current() = c; }

void add_aux_loss(const std::string& name, const at::Tensor& value, double weight) {
  if (auto* sink = forward_context().aux) sink->push_back({name, value, weight});
}

}  // namespace dynarch

#include "model/stack.h"

#include "model/isotropic.h"

namespace dynarch {

std::shared_ptr<Stack> make_main_network(const ModelConfig& c, int s) {
  return std::make_shared<Isotropic>(c.stages.at(s).main, stack_options(c, s));
}

}  // namespace dynarch

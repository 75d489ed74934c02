#include "model/stack.h"

#include "model/hmodel.h"
#include "model/isotropic.h"

namespace dynarch {

std::shared_ptr<Stack> make_main_network(const ModelConfig& c, int s) {
  if (c.hmodel) return std::make_shared<HModel>(c, s);
  return std::make_shared<Isotropic>(c.stages.at(s).main, stack_options(c, s));
}

}  // namespace dynarch

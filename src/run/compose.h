// H-Model composition from pretrained parts (hmodel.md §6): node layers are
// copied from trained checkpoints by tensor-name prefix.
#pragma once
#include "run/compose.h"
#include "model/lm.h"

namespace dynarch {

// Copies the pretrained layers named by hmodel.nodes[*].from into their nodes
// (tensor names: prefix + k + "." + name); returns the number of tensors copied.
int64_t load_pretrained_nodes(ByteLM& m);

}  // namespace dynarch

// `dynarch eval` for a classifier: accuracy overall, by label and by a group
// field of the items (the proof depth for the reasoning dataset).
#pragma once
#include <string>

#include "model/lm.h"

namespace dynarch {

// dynarch eval for a classifier: prints the table and one JSON line; writes the
// JSON to json_out if given.
void report_classifier(ByteLM& model, const std::string& file, const std::string& group_key,
                       const std::string& json_out, int64_t batch, bool bf16, bool progress);

}  // namespace dynarch

#include "infer/accuracy.h"

#include <torch/torch.h>

#include <cstdio>

#include "io/atomic_file.h"
#include "train/classify_objective.h"

namespace dynarch {

void report_classifier(ByteLM& model, const std::string& file, const std::string& group_key,
                       const std::string& json_out, int64_t batch, bool bf16, bool progress) {
  auto set = load_labeled(file, model.config.task.labels, group_key);
  auto r = evaluate_classifier(model, set, {}, batch, bf16, progress);
  nlohmann::ordered_json j{{"file", file}};
  j.update(r.to_json());
  std::printf("%s: accuracy %.4f (%lld/%lld), loss %.4f\n%s%s\n", file.c_str(), r.accuracy(), (long long)r.correct,
              (long long)r.n, r.loss(), r.table().c_str(), j.dump().c_str());
  if (!json_out.empty()) io::write_file_atomic(json_out, j.dump(2) + "\n");
}

}  // namespace dynarch

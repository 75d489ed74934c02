// libFuzzer target: labeled JSONL (data/labeled), as classifier training and
// `eval` read it, with the reasoning dataset's labels. Accepted items must have
// a label in range and increasing line numbers, and become exactly the
// batches the classifier sees (BOS + the text's bytes, zero padding).
#include "core/bytes.h"
#include "core/error.h"
#include "data/labeled.h"
#include "fuzz_util.h"

using namespace dynarch;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Scratch file("jsonl");
  static const std::vector<std::string> labels = {"True", "False", "Unknown"};
  fuzz::write_file(file.path, data, size);
  LabeledSet s;
  try {
    s = load_labeled(file.path, labels);
  } catch (const UserError& e) {
    fuzz::rejected(e);
    if (std::string(e.what()).find(file.path) == std::string::npos) fuzz::violated("error does not name the file");
    return 0;
  }
  if (s.items.empty()) fuzz::violated("accepted a file without items");
  size_t longest = 0;
  for (size_t i = 0; i < s.items.size(); ++i) {
    const auto& it = s.items[i];
    if (it.label < 0 || it.label >= (int)labels.size()) fuzz::violated("label out of range");
    if (it.line < 1 || (i > 0 && it.line <= s.items[i - 1].line)) fuzz::violated("line numbers not increasing");
    longest = std::max(longest, it.text.size());
  }
  s.check_fits((int64_t)longest + 1, "--seq-len");  // must not throw: every input fits exactly
  std::vector<int64_t> idx = spread_indices(s.size(), 16);
  ClsBatch b = make_cls_batch(s, idx);
  const int64_t L = b.ids.size(1);
  for (size_t r = 0; r < idx.size(); ++r) {
    const auto& it = s.items[idx[r]];
    const auto* row = b.ids.data_ptr<int64_t>() + r * L;
    if (row[0] != kBOS || b.lengths[r].item<int64_t>() != (int64_t)it.text.size() + 1 ||
        b.labels[r].item<int64_t>() != it.label)
      fuzz::violated("batch row header differs from the item");
    for (int64_t t = 1; t < L; ++t)
      if (row[t] != (t <= (int64_t)it.text.size() ? (uint8_t)it.text[t - 1] : 0)) fuzz::violated("batch bytes");
  }
  EpochSampler sampler(s.size(), 7);
  std::vector<int> seen(s.size());
  for (int64_t c = 0; c < s.size(); ++c) ++seen.at(sampler.at(c));
  for (int n : seen)
    if (n != 1) fuzz::violated("an epoch is not a permutation");
  return 0;
}

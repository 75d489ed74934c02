// Labeled text items from JSONL for sequence classification (hmodel.md §13 E1).
// A line is {"theory": T, "question": Q, "label": NAME, "depth": d, ...} with
// text = T + "\nQ: " + Q (the reasoning dataset), or {"text": X, "label": NAME}.
// The label is one of the config's label names (or its class index).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dynarch {

struct LabeledItem {
  std::string text;
  int label = 0;
  std::string group;  // value of the group field (e.g. depth) as text; "-" if absent
  int64_t line = 0;   // 1-based line in the file
};

struct LabeledSet {
  std::string path, group_key;
  std::vector<std::string> labels;
  std::vector<LabeledItem> items;
  int64_t size() const { return (int64_t)items.size(); }
  // Every input (BOS + bytes) must fit in max_len positions; the error names
  // the file, the line and `flag`.
  void check_fits(int64_t max_len, const std::string& flag) const;
};

// Errors name the file and the line number.
LabeledSet load_labeled(const std::string& path, const std::vector<std::string>& labels,
                        const std::string& group_key = "depth");

struct ClsBatch {
  at::Tensor ids;      // (B, L) int64: BOS (254) + UTF-8 bytes, right-padded with 0 to the longest row
  at::Tensor lengths;  // (B) int64: valid positions (1 + bytes)
  at::Tensor labels;   // (B) int64
};
ClsBatch make_cls_batch(const LabeledSet& s, const std::vector<int64_t>& idx);

// Training order: the c-th example drawn is position c mod n of a permutation
// of epoch c / n, seeded by (seed, epoch). A pure function of c, so a resumed
// run only needs its step.
class EpochSampler {
 public:
  EpochSampler(int64_t n, uint64_t seed) : n_(n), seed_(seed) {}
  int64_t at(int64_t c);
  // Rows of micro-batch `micro` of step `step` (accum micro-batches of B rows per step).
  std::vector<int64_t> batch(int64_t step, int64_t micro, int64_t accum, int64_t B);

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

// n indices spread evenly over [0, size) (all of them if n >= size): a fixed validation subset.
std::vector<int64_t> spread_indices(int64_t size, int64_t n);

}  // namespace dynarch

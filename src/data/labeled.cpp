#include "data/labeled.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include "core/error.h"
#include "data/corpus.h"
#include "data/reasoning.h"
#include "core/bytes.h"

namespace dynarch {
using nlohmann::json;

void LabeledSet::check_fits(int64_t max_len, const std::string& flag) const {
  for (auto& it : items)
    if ((int64_t)it.text.size() + 1 > max_len)
      fail(path + ":" + std::to_string(it.line) + ": input is " + std::to_string(it.text.size()) +
           " bytes, more than " + flag + " " + std::to_string(max_len) + " minus 1 (BOS); raise " + flag);
}

LabeledSet load_labeled(const std::string& path, const std::vector<std::string>& labels, const std::string& group_key) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open labeled data " + path);
  LabeledSet s{path, group_key, labels, {}};
  std::string line;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string at = path + ":" + std::to_string(n) + ": ";
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      fail(at + "not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) fail(at + "expected a JSON object");
    LabeledItem it;
    it.line = n;
    auto text_field = [&](const char* k) {
      if (!j[k].is_string()) fail(at + "field \"" + std::string(k) + "\" must be a string");
      return j[k].get<std::string>();
    };
    if (j.contains("text"))
      it.text = text_field("text");
    else if (j.contains("theory") && j.contains("question"))
      it.text = text_field("theory") + "\nQ: " + text_field("question");
    else
      fail(at + "needs a \"text\" field or \"theory\" and \"question\"");
    if (!j.contains("label")) fail(at + "missing field \"label\"");
    const auto& l = j["label"];
    if (l.is_string()) {
      auto pos = std::find(labels.begin(), labels.end(), l.get<std::string>());
      if (pos == labels.end()) {
        std::string names;
        for (auto& x : labels) names += (names.empty() ? "" : ", ") + x;
        fail(at + "label \"" + l.get<std::string>() + "\" is not one of the model's labels (" + names + ")");
      }
      it.label = (int)(pos - labels.begin());
    } else if (l.is_number_integer() && l.get<int64_t>() >= 0 && l.get<int64_t>() < (int64_t)labels.size()) {
      it.label = l.get<int>();
    } else {
      fail(at + "label " + l.dump() + " is neither a label name nor a class index < " + std::to_string(labels.size()));
    }
    it.group = !j.contains(group_key) ? "-" : j[group_key].is_string() ? j[group_key].get<std::string>()
                                                                      : j[group_key].dump();
    s.items.push_back(std::move(it));
  }
  if (s.items.empty()) fail("labeled data " + path + " holds no items");
  return s;
}

ClsBatch make_cls_batch(const LabeledSet& s, const std::vector<int64_t>& idx) {
  const int64_t B = idx.size();
  int64_t L = 1;
  for (auto i : idx) L = std::max<int64_t>(L, (int64_t)s.items.at(i).text.size() + 1);
  ClsBatch b{at::zeros({B, L}, at::kLong), at::empty({B}, at::kLong), at::empty({B}, at::kLong)};
  auto* ids = b.ids.data_ptr<int64_t>();
  auto* len = b.lengths.data_ptr<int64_t>();
  auto* lab = b.labels.data_ptr<int64_t>();
  for (int64_t r = 0; r < B; ++r) {
    const auto& it = s.items[idx[r]];
    ids[r * L] = kBOS;
    for (size_t t = 0; t < it.text.size(); ++t) ids[r * L + 1 + t] = (uint8_t)it.text[t];
    len[r] = (int64_t)it.text.size() + 1;
    lab[r] = it.label;
  }
  return b;
}

int64_t EpochSampler::at(int64_t c) {
  const int64_t epoch = c / n_;
  if (epoch != epoch_) {
    perm_.resize(n_);
    for (int64_t i = 0; i < n_; ++i) perm_[i] = i;
    reasoning::Rng g(splitmix64(seed_ ^ splitmix64((uint64_t)epoch)));
    g.shuffle(perm_);
    epoch_ = epoch;
  }
  return perm_[c % n_];
}

std::vector<int64_t> EpochSampler::batch(int64_t step, int64_t micro, int64_t accum, int64_t B) {
  std::vector<int64_t> v(B);
  for (int64_t r = 0; r < B; ++r) v[r] = at((step * accum + micro) * B + r);
  return v;
}

std::vector<int64_t> spread_indices(int64_t size, int64_t n) {
  std::vector<int64_t> v;
  n = std::min(n, size);
  for (int64_t i = 0; i < n; ++i) v.push_back(i * size / n);
  return v;
}

}  // namespace dynarch

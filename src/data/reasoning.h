// Synthetic multi-hop rule reasoning (ProofWriter-like), hmodel.md §13 E1.
// A theory is English facts and rules over a few entities and attributes; the
// question is one literal; the label follows from forward chaining (open world:
// True / False / Unknown, closed world: True / False by negation as failure).
// Every item is a pure function of (seed, split, index): its own SplitMix64
// stream and our own integer sampling, so the bytes are the same everywhere.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace dynarch::reasoning {

// SplitMix64 stream with portable integer sampling (no <random> distributions:
// they differ between standard libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n);                 // uniform in [0, n), unbiased (rejection)
  int range(int lo, int hi) { return lo + (int)below((uint64_t)(hi - lo + 1)); }  // [lo, hi]
  bool chance(int num, int den) { return (int)below((uint64_t)den) < num; }
  template <class T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates with below()
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  uint64_t s_;
};

inline constexpr int kMaxDepth = 5;
const std::vector<std::string>& entity_names();     // 30 people, then 10 "the <animal>"
const std::vector<std::string>& attribute_names();  // 20 adjectives

// Literal: entity, attribute (indices into the tables above), polarity.
struct Lit {
  int ent = 0, attr = 0;
  bool pos = true;
  bool operator==(const Lit&) const = default;
};

enum class RuleKind { IfThen, IfAnd, All, Specific };
// IfThen:   "If someone is A then they are (not) C."
// IfAnd:    "If someone is A and B then they are (not) C."
// All:      "All A people are (not) C."
// Specific: "If E is A then E is (not) C."
// Generic rules apply to every entity; conditions are always positive.
struct Rule {
  RuleKind kind = RuleKind::IfThen;
  int ent = -1;  // Specific only
  int a = 0, b = -1, c = 0;
  bool pos = true;  // polarity of the conclusion
};

struct Theory {
  std::vector<int> entities;  // the entities the theory talks about
  std::vector<Lit> facts;
  std::vector<Rule> rules;
};

// Forward chaining to a fixpoint. depth(l) = 0 for stated facts, else the round
// that first derives l (rules fire on literals known before the round), -1 if
// never derived. `contradiction`: some literal holds with both polarities.
struct Closure {
  bool contradiction = false;
  std::vector<int8_t> d;  // [ent][attr][pol]
  int depth(const Lit& l) const;
};
Closure forward_chain(const Theory& t);

std::string sentence(const Lit& f);
std::string sentence(const Rule& r);

enum class Split { Train = 0, Test = 1 };
const char* split_name(Split s);

struct GenOptions {
  int max_depth = kMaxDepth;  // depths 0..max_depth
  uint64_t seed = 0;
  bool closed_world = false;
  int max_bytes = 1024;  // theory + "\nQ: " + question
  // Distractors beside the proof's backbone: 1..F facts (0 = none) and R' in [min(2, R), R]
  // rules, the first a near miss (so R >= 1). The defaults give the standard set; smaller
  // values give shorter theories (a cheaper curriculum, same labels and depths).
  int distractor_facts = 5, distractor_rules = 6;
};

struct Item {
  std::string id, theory, question, label;
  int depth = 0;
  bool closed_world = false;
  std::vector<std::string> proof;  // backbone sentences in chain order; "(removed) " marks a dropped fact
  uint64_t seed = 0;               // the item's own stream seed
  std::string input() const { return theory + "\nQ: " + question; }
  nlohmann::ordered_json to_json() const;
};

std::vector<std::string> labels_for(bool closed_world);  // True, False[, Unknown]
// Item `index` of a split: depth = index mod (max_depth + 1), label cycles with
// index / (max_depth + 1), so every prefix is balanced over labels x depths.
Item generate_item(const GenOptions& o, Split split, int64_t index);
// per_depth items for each depth 0..max_depth, in index order.
std::vector<Item> generate_split(const GenOptions& o, Split split, int64_t per_depth);

// Writes DIR/train.jsonl, DIR/test.jsonl and DIR/manifest.json; returns the manifest.
nlohmann::json write_dataset(const std::string& dir, const GenOptions& o, int64_t train_per_depth,
                             int64_t test_per_depth);

}  // namespace dynarch::reasoning

#include "data/reasoning.h"

#include <filesystem>

#include "core/error.h"
#include "data/corpus.h"
#include "io/atomic_file.h"
#include "io/fs_tree.h"

namespace dynarch::reasoning {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
constexpr int kAttempts = 10000;  // rejection sampling; typical items need a handful

std::string capitalised(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = (char)(s[0] - 'a' + 'A');
  return s;
}

int num_entities() { return (int)entity_names().size(); }
int num_attributes() { return (int)attribute_names().size(); }
int index_of(const Lit& l) { return (l.ent * num_attributes() + l.attr) * 2 + (l.pos ? 0 : 1); }

// k distinct values of [0, n) in random order (partial Fisher-Yates).
std::vector<int> sample_distinct(Rng& g, int n, int k) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  for (int i = 0; i < k; ++i) std::swap(v[i], v[i + g.below(n - i)]);
  v.resize(k);
  return v;
}

enum Label { kTrue = 0, kFalse = 1, kUnknown = 2 };

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// One attempt at an item; false if the chainer disagrees with the intent.
bool try_item(Rng& g, const GenOptions& o, int depth, Label label, Item& out) {
  const bool closed = o.closed_world;
  const auto ents = sample_distinct(g, num_entities(), g.range(2, 4));
  const auto attrs = sample_distinct(g, num_attributes(), g.range(6, 10));
  const int e = ents[0];
  // chain attributes attrs[0..depth]; attrs[depth+1..] are spare for "and" conditions
  size_t spare = depth + 1;
  const bool asked_pos = closed ? true : g.chance(1, 2);
  bool derived_pos = asked_pos;  // True (and closed-world False: derivable before the removal)
  if (!closed && label == kFalse) derived_pos = !asked_pos;
  if (!closed && label == kUnknown) derived_pos = g.chance(1, 2);
  const bool remove = label == kUnknown || (closed && label == kFalse);
  const Lit asked{e, attrs[depth], asked_pos}, derived{e, attrs[depth], derived_pos};

  // Backbone: a stated fact and `depth` rules leading to `derived`.
  std::vector<Lit> facts{{e, attrs[0], depth == 0 ? derived_pos : true}};
  std::vector<Rule> rules;
  std::vector<std::string> proof{sentence(facts[0])};
  std::vector<int> proof_of_fact{0};  // proof index of each backbone fact
  for (int i = 1; i <= depth; ++i) {
    Rule r;
    r.kind = (RuleKind)g.below(4);
    r.a = attrs[i - 1];
    r.c = attrs[i];
    r.pos = i == depth ? derived_pos : true;
    if (r.kind == RuleKind::Specific) r.ent = e;
    if (r.kind == RuleKind::IfAnd) {
      if (i >= 2 && g.chance(1, 2)) {
        r.b = attrs[g.below(i - 1)];  // an attribute derived earlier in the chain
      } else if (spare < attrs.size()) {
        r.b = attrs[spare++];
        facts.push_back({e, r.b, true});
        proof_of_fact.push_back((int)proof.size());
        proof.push_back(sentence(facts.back()));
      } else {
        r.kind = RuleKind::IfThen;
      }
      if (r.b >= 0 && g.chance(1, 2)) std::swap(r.a, r.b);
    }
    rules.push_back(r);
    proof.push_back(sentence(r));
  }
  Lit removed{-1, -1, true};
  std::vector<Lit> kept = facts;
  if (remove) {
    const size_t k = g.below(facts.size());
    removed = facts[k];
    kept.erase(kept.begin() + k);
    proof[proof_of_fact[k]] = "(removed) " + proof[proof_of_fact[k]];
  }

  // Distractors: facts about any entity, rules over the theory's attributes.
  // The first rule concludes the asked attribute with the polarity opposite to
  // the backbone's (a near miss: it must not fire), so the polarity of rule
  // conclusions alone does not give the label away; an item that lost a fact
  // gets one more distractor fact, so the fact count does not either.
  auto stated = [&](int ent, int attr) {
    for (auto* v : {&facts, &kept})
      for (auto& f : *v)
        if (f.ent == ent && f.attr == attr) return true;
    return false;
  };
  const int df = o.distractor_facts, dr = o.distractor_rules;
  const int n_facts = (df > 0 ? g.range(1, df) : 0) + (remove ? 1 : 0), n_rules = g.range(std::min(2, dr), dr);
  for (int added = 0, tries = 0; added < n_facts && tries < 50; ++tries) {
    Lit f{ents[g.below(ents.size())], attrs[g.below(attrs.size())], closed || !g.chance(1, 4)};
    if (!stated(f.ent, f.attr)) kept.push_back(f), ++added;
  }
  std::vector<std::string> rule_text;
  for (auto& r : rules) rule_text.push_back(sentence(r));
  for (int added = 0, tries = 0; added < n_rules && tries < 50; ++tries) {
    const bool near_miss = added == 0;
    Rule r;
    r.kind = (RuleKind)g.below(4);
    r.c = near_miss ? asked.attr : attrs[g.below(attrs.size())];
    r.pos = closed || (near_miss ? !derived_pos : !g.chance(1, 4));
    r.a = attrs[g.below(attrs.size())];
    if (r.kind == RuleKind::IfAnd) r.b = attrs[g.below(attrs.size())];
    if (r.kind == RuleKind::Specific) r.ent = near_miss ? e : ents[g.below(ents.size())];
    if (r.a == r.c || r.b == r.c || r.a == r.b) continue;
    auto s = sentence(r);
    if (std::find(rule_text.begin(), rule_text.end(), s) != rule_text.end()) continue;
    rules.push_back(r);
    rule_text.push_back(s);
    ++added;
  }

  // Check the intent with the chainer: the full backbone proves `derived` at
  // exactly `depth` without contradiction; the removal leaves neither polarity.
  Theory full{ents, facts, rules};
  for (size_t i = facts.size() - (remove ? 1 : 0); i < kept.size(); ++i) full.facts.push_back(kept[i]);
  auto cf = forward_chain(full);
  if (cf.contradiction || cf.depth(derived) != depth) return false;
  if (remove) {
    auto ck = forward_chain(Theory{ents, kept, rules});
    if (ck.depth(asked) >= 0 || ck.depth(Lit{asked.ent, asked.attr, !asked.pos}) >= 0) return false;
  }

  std::vector<std::string> fact_text;
  for (auto& f : kept) fact_text.push_back(sentence(f));
  g.shuffle(fact_text);
  g.shuffle(rule_text);
  fact_text.insert(fact_text.end(), rule_text.begin(), rule_text.end());  // facts first, then rules
  out.theory = join(fact_text);
  out.question = sentence(asked);
  out.depth = depth;
  out.label = labels_for(closed)[label];
  out.closed_world = closed;
  out.proof = proof;
  return (int)out.input().size() <= o.max_bytes;
}

}  // namespace

uint64_t Rng::next() {
  uint64_t r = splitmix64(s_);  // = the SplitMix64 output after advancing by the golden gamma
  s_ += kGolden;
  return r;
}

uint64_t Rng::below(uint64_t n) {
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n: reject the short last bucket
  for (;;) {
    uint64_t x = next();
    if (x >= threshold) return x % n;
  }
}

const std::vector<std::string>& entity_names() {
  static const std::vector<std::string> v = {
      "Anne", "Bob", "Charlie", "Dave", "Erin", "Fiona", "Gary", "Harry", "Alan", "Bella",
      "Carl", "Dina", "Eric", "Gwen", "Helen", "Ivan", "Julia", "Kevin", "Laura", "Mike",
      "Nina", "Oscar", "Paula", "Quinn", "Rosa", "Sam", "Tina", "Victor", "Wendy", "Zoe",
      "the bear", "the cat", "the cow", "the dog", "the lion", "the mouse", "the rabbit", "the squirrel",
      "the tiger", "the eagle"};
  return v;
}

const std::vector<std::string>& attribute_names() {
  static const std::vector<std::string> v = {"big",   "blue",  "cold",  "furry", "green", "kind",   "nice",
                                             "quiet", "red",   "rough", "round", "smart", "white",  "young",
                                             "cute",  "fierce", "heavy", "small", "strong", "sleepy"};
  return v;
}

int Closure::depth(const Lit& l) const { return d[index_of(l)]; }

Closure forward_chain(const Theory& t) {
  Closure c;
  c.d.assign((size_t)num_entities() * num_attributes() * 2, -1);
  for (auto& f : t.facts) c.d[index_of(f)] = 0;
  // Round r fires every rule on literals known before r (depth < r).
  auto known_before = [&](int ent, int attr, int r) {
    int8_t v = c.d[index_of({ent, attr, true})];
    return v >= 0 && v < r;
  };
  for (int r = 1;; ++r) {
    bool changed = false;
    for (auto& rule : t.rules) {
      for (int ent : t.entities) {
        if (rule.kind == RuleKind::Specific && ent != rule.ent) continue;
        if (!known_before(ent, rule.a, r) || (rule.b >= 0 && !known_before(ent, rule.b, r))) continue;
        int8_t& v = c.d[index_of({ent, rule.c, rule.pos})];
        if (v < 0) v = (int8_t)r, changed = true;
      }
    }
    if (!changed || r > 100) break;
  }
  for (int ent : t.entities)
    for (int a = 0; a < num_attributes(); ++a)
      if (c.d[index_of({ent, a, true})] >= 0 && c.d[index_of({ent, a, false})] >= 0) c.contradiction = true;
  return c;
}

std::string sentence(const Lit& f) {
  return capitalised(entity_names()[f.ent]) + " is " + (f.pos ? "" : "not ") + attribute_names()[f.attr] + ".";
}

std::string sentence(const Rule& r) {
  const auto& A = attribute_names();
  const std::string neg = r.pos ? "" : "not ";
  switch (r.kind) {
    case RuleKind::IfThen: return "If someone is " + A[r.a] + " then they are " + neg + A[r.c] + ".";
    case RuleKind::IfAnd:
      return "If someone is " + A[r.a] + " and " + A[r.b] + " then they are " + neg + A[r.c] + ".";
    case RuleKind::All: return "All " + A[r.a] + " people are " + neg + A[r.c] + ".";
    case RuleKind::Specific: {
      const auto& E = entity_names()[r.ent];
      return "If " + E + " is " + A[r.a] + " then " + E + " is " + neg + A[r.c] + ".";
    }
  }
  return {};
}

const char* split_name(Split s) { return s == Split::Train ? "train" : "test"; }

std::vector<std::string> labels_for(bool closed_world) {
  if (closed_world) return {"True", "False"};
  return {"True", "False", "Unknown"};
}

nlohmann::ordered_json Item::to_json() const {
  return {{"id", id},       {"theory", theory}, {"question", question},
          {"label", label}, {"depth", depth},   {"mode", closed_world ? "closed" : "open"},
          {"proof", proof}, {"seed", seed}};
}

Item generate_item(const GenOptions& o, Split split, int64_t index) {
  check(o.max_depth >= 0 && o.max_depth <= kMaxDepth, "reasoning: max depth must be in 0.." + std::to_string(kMaxDepth));
  check(o.distractor_facts >= 0, "reasoning: --distractor-facts must be >= 0, got " + std::to_string(o.distractor_facts));
  check(o.distractor_rules >= 1, "reasoning: --distractor-rules must be >= 1 (the near-miss rule), got " +
                                     std::to_string(o.distractor_rules));
  const int64_t D = o.max_depth + 1;
  const auto nl = (int64_t)labels_for(o.closed_world).size();
  Item it;
  it.seed = splitmix64(o.seed ^ splitmix64(((uint64_t)split + 1) * kGolden ^ splitmix64((uint64_t)index)));
  it.id = std::string(split_name(split)) + "-" + std::to_string(index);
  Rng g(it.seed);
  for (int a = 0; a < kAttempts; ++a)
    if (try_item(g, o, (int)(index % D), (Label)((index / D) % nl), it)) return it;
  fail("reasoning: no valid item after " + std::to_string(kAttempts) + " attempts (item " + it.id + ")");
}

std::vector<Item> generate_split(const GenOptions& o, Split split, int64_t per_depth) {
  std::vector<Item> v;
  const int64_t n = per_depth * (o.max_depth + 1);
  v.reserve(n);
  for (int64_t i = 0; i < n; ++i) v.push_back(generate_item(o, split, i));
  return v;
}

nlohmann::json write_dataset(const std::string& dir, const GenOptions& o, int64_t train_per_depth,
                             int64_t test_per_depth) {
  io::make_dirs(dir);
  nlohmann::json counts;
  for (auto [split, n] : {std::pair{Split::Train, train_per_depth}, std::pair{Split::Test, test_per_depth}}) {
    std::string text;
    nlohmann::json by_label = nlohmann::json::object(), by_depth = nlohmann::json::object();
    for (auto& it : generate_split(o, split, n)) {
      text += it.to_json().dump() + "\n";
      by_label[it.label] = by_label.value(it.label, 0) + 1;
      by_depth[std::to_string(it.depth)] = by_depth.value(std::to_string(it.depth), 0) + 1;
    }
    const std::string name = split_name(split);
    io::write_file_atomic((std::filesystem::path(dir) / (name + ".jsonl")).string(), text);
    counts[name] = {{"items", n * (o.max_depth + 1)}, {"by_label", by_label}, {"by_depth", by_depth}};
  }
  nlohmann::json m{{"generator", "dynarch reasoning (hmodel.md §13 E1)"},
                   {"seed", o.seed},
                   {"mode", o.closed_world ? "closed" : "open"},
                   {"labels", labels_for(o.closed_world)},
                   {"max_depth", o.max_depth},
                   {"max_bytes", o.max_bytes},
                   {"distractor_facts", o.distractor_facts},
                   {"distractor_rules", o.distractor_rules},
                   {"train_per_depth", train_per_depth},
                   {"test_per_depth", test_per_depth},
                   {"counts", counts}};
  io::write_file_atomic((std::filesystem::path(dir) / "manifest.json").string(), m.dump(2) + "\n");
  return m;
}

}  // namespace dynarch::reasoning

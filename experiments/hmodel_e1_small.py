#!/usr/bin/env python3
"""E1, third round (issue #19): a reasoning task small enough for a tiny byte model on one CPU thread.

The natural-language theories (dynarch reasoning) never got a static baseline above the lookup: the
model had to find the question's words in a ~130-byte theory before any reasoning could start. Here
the rule base is fixed (so it is memorised in the weights, like a knowledge base) and only the facts
and the question change:

  24 atoms a..x in 4 levels (a-h, i-n, o-s, t-x); every atom above level 0 has 1-2 Horn rules with 1-2
  premises from lower levels, at least one from the level just below (so a proof can need 3 rounds).
  item text: the facts (3-5 atoms, any level, random order) then "?" and the question atom, e.g.
  "dkb?t"; the answer is read at the last byte (the question).
  label: True when forward chaining over the rule base derives the question (closed world);
  depth: the round at which it is first derived (0 = a stated fact).
  False items are near misses: a True item of depth d with one fact it needs swapped for another atom
  so the question is no longer derived; they carry depth d. Each depth is balanced True/False, so the
  lookup reference (True iff the question is a stated fact) scores 1.0 at depth 0 and 0.5 deeper.

--in-context: every item draws its own rule base and writes the rules it needs (those concluding the
question or one of its ancestors, plus 2 others) into the text, "facts|rules?q" with rules as "ab>c"
separated by ",", e.g. "dkb|d>i,bi>o,o>t,c>j?t": the model has to read the rules, not recall them.

Writes OUT/{train,test}.jsonl ({"text","label","depth"}, what dynarch train/eval read),
OUT/rules.txt and OUT/manifest.json. Test texts never occur in train.
Usage: hmodel_e1_small.py OUT [--train-per-depth N] [--test-per-depth N] [--max-depth D] [--seed S] [--in-context]
"""
import argparse
import json
import os
import random

LEVELS = ["abcdefgh", "ijklmn", "opqrs", "tuvwx"]
ATOMS = "".join(LEVELS)


def rule_base(rng):
    rules = []  # (premises tuple, conclusion)
    for k in range(1, len(LEVELS)):
        lower = "".join(LEVELS[:k])
        for c in LEVELS[k]:
            for _ in range(rng.choice([1, 2])):
                prem = {rng.choice(LEVELS[k - 1])}
                if rng.random() < 0.5:
                    prem.add(rng.choice(lower))
                rules.append((tuple(sorted(prem)), c))
    return rules


def depth_of(facts, q, rules, max_rounds=8):
    """Round at which q is first derived by forward chaining (all rules at once per round), or None."""
    known = set(facts)
    for r in range(max_rounds + 1):
        if q in known:
            return r
        new = {c for p, c in rules if c not in known and all(x in known for x in p)}
        if not new:
            return None
        known |= new
    return None


def sample_true(rng, rules, d):
    while True:
        facts = rng.sample(ATOMS, rng.randint(3, 5))
        q = rng.choice(ATOMS)
        if depth_of(facts, q, rules) == d:
            return facts, q


def near_miss(rng, rules, facts, q):
    for _ in range(50):
        f = list(facts)
        i = rng.randrange(len(f))
        f[i] = rng.choice([a for a in ATOMS if a not in f and a != q])
        if depth_of(f, q, rules) is None:
            return f, q
    return None


def written_rules(rng, rules, q):  # the rules a proof of q can use, plus 2 distractors, shuffled
    need, todo = set(), [q]
    while todo:
        c = todo.pop()
        for p, cc in rules:
            if cc == c and (p, cc) not in need:
                need.add((p, cc))
                todo += list(p)
    rest = [r for r in rules if r not in need]
    out = list(need) + rng.sample(rest, min(2, len(rest)))
    rng.shuffle(out)
    return ",".join("".join(p) + ">" + c for p, c in out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--train-per-depth", type=int, default=10000)
    ap.add_argument("--test-per-depth", type=int, default=250)
    ap.add_argument("--max-depth", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--in-context", action="store_true")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    rules = rule_base(rng)
    os.makedirs(a.out, exist_ok=True)
    seen = set()

    def items(n, d):  # n items of depth d, half True, half their near misses
        out = []
        while len(out) < n:
            rs = rule_base(rng) if a.in_context else rules
            facts, q = sample_true(rng, rs, d)
            neg = near_miss(rng, rs, facts, q)
            if neg is None:
                continue
            mid = "|" + written_rules(rng, rs, q) if a.in_context else ""
            pair = [("".join(facts) + mid + "?" + q, "True"), ("".join(neg[0]) + mid + "?" + q, "False")]
            if any(t in seen for t, _ in pair):
                continue
            out += [{"text": t, "label": l, "depth": d} for t, l in pair]
        return out

    test = [it for d in range(a.max_depth + 1) for it in items(a.test_per_depth, d)]
    seen.update(it["text"] for it in test)
    train = [it for d in range(a.max_depth + 1) for it in items(a.train_per_depth, d)]
    rng.shuffle(train)
    for name, xs in (("train", train), ("test", test)):
        with open(os.path.join(a.out, f"{name}.jsonl"), "w") as g:
            g.writelines(json.dumps(x) + "\n" for x in xs)
    with open(os.path.join(a.out, "rules.txt"), "w") as g:
        g.writelines(f"{' & '.join(p)} -> {c}\n" for p, c in rules)
    json.dump({"generator": "experiments/hmodel_e1_small.py", "seed": a.seed, "max_depth": a.max_depth,
               "train_per_depth": a.train_per_depth, "test_per_depth": a.test_per_depth, "train": len(train), "test": len(test), "rules": len(rules), "atoms": ATOMS,
               "in_context": a.in_context},
              open(os.path.join(a.out, "manifest.json"), "w"), indent=1)


if __name__ == "__main__":
    main()

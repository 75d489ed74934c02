#!/usr/bin/env python3
"""Report for experiments/hmodel_reasoning_small.sh (E1, third round, issue #19).

Usage: report_hmodel_reasoning_small.py OUT DOC "SEEDS" [--gate G] [--command CMD] [--name NAME]
  --gate G  only check: exit 0 when static_T2 beats the lookup reference by G on every seed, else 1.
"""
import argparse
import json
import os
import statistics
import struct

MODELS = [("static_T2", "static stack, 2 layers (L = 2)"),
          ("hm_T2", "H-Model, pool of 2 layers, T = L = 2"),
          ("hm_T4", "H-Model, pool of 2 layers, T = 2L = 4"),
          ("static_T4", "static stack, 4 layers (the 4 layer calls of hm_T4, 2x params)")]

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("doc")
ap.add_argument("seeds")
ap.add_argument("--gate", type=float)
ap.add_argument("--command", default="experiments/hmodel_reasoning_small.sh")
ap.add_argument("--name", default="hmodel_reasoning_small")  # docs/experiments/NAME.{md,json}
a = ap.parse_args()
seeds = a.seeds.split()
test = [json.loads(l) for l in open(os.path.join(a.out, "data", "test.jsonl"))]
depths = sorted({x["depth"] for x in test})


def lookup(x):  # True iff the question atom is a stated fact: no learning, solves depth 0
    facts, q = x["text"].split("?")
    facts = facts.split("|")[0]  # in-context items: "facts|rules?q"
    return "True" if q in facts else "False"


def acc(xs):
    return sum(lookup(x) == x["label"] for x in xs) / len(xs)


ref = {"all": acc(test), **{str(d): acc([x for x in test if x["depth"] == d]) for d in depths}}


def params(run):  # parameter count from the safetensors header
    with open(os.path.join(run, "checkpoint", "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    total = 0
    for k, v in h.items():
        if k != "__metadata__":
            p = 1
            for s in v["shape"]:
                p *= s
            total += p
    return total


def result(name, seed):
    run = os.path.join(a.out, f"{name}_s{seed}")
    if not os.path.exists(os.path.join(run, "eval.json")):
        return None
    e = json.load(open(os.path.join(run, "eval.json")))
    m = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    secs = os.path.join(run, "train_seconds")
    return {"run": f"{name}_s{seed}", "all": e["accuracy"],
            **{str(d): e["by_depth"][str(d)]["accuracy"] for d in depths},
            "params": params(run), "train_s": int(open(secs).read()) if os.path.exists(secs) else None,
            "val_curve": [(x["step"], x["val_acc"]) for x in m if "val_acc" in x],
            "final_loss": next((x["loss"] for x in reversed(m) if "loss" in x), None)}


res = {n: [r for r in (result(n, s) for s in seeds) if r] for n, _ in MODELS}
if a.gate is not None:
    st = res["static_T2"]
    ok = len(st) == len(seeds) and all(r["all"] >= ref["all"] + a.gate for r in st)
    print(f"[gate] lookup {ref['all']:.3f}; static_T2 " + ", ".join(f"{r['run']} {r['all']:.3f}" for r in st)
          + f" -> {'pass' if ok else 'fail'}")
    raise SystemExit(0 if ok else 1)

man = json.load(open(os.path.join(a.out, "data", "manifest.json")))
L = ["# E1 on a task the small models can learn: H-Model vs static stack by proof depth (issue #19)", "",
     f"Command: `{a.command}`. Dataset: `experiments/hmodel_e1_small.py` (seed {man['seed']}): "
     + ("a Horn rule base drawn per item (24 one-letter atoms in 4 levels) and written into the item, "
        "per item 3-5 facts, the rules a proof can use plus 2 others, and a question, e.g. `gib|o>v,g>k,bg>j,f>j?j`; "
        if man.get("in_context") else
        f"a fixed Horn rule base ({man['rules']} rules over 24 one-letter atoms in 4 levels, memorised in the "
        "weights), per item 3-5 facts and a question, e.g. `dkb?t`; ")
     + "label True iff forward chaining derives the question (closed world); depth = the round "
     f"at which it is first derived; False items are near misses (a True item of the same depth with one needed fact "
     f"swapped). Depths 0-{man['max_depth']}, balanced True/False per depth; {man['train']} training and {man['test']} "
     "test items (no test text in train). All models d 64, 4 heads, classification from the last byte (the question), "
     "same steps, batch, lr and seed per column; one thread each.", "",
     "| model | seed | params | all | " + " | ".join(f"depth {d}" for d in depths) + " | train s |",
     "|---|---|---|---|" + "---|" * len(depths) + "---|"]
for n, desc in MODELS:
    for r in res[n]:
        L.append(f"| {n} ({desc}) | {r['run'][-1]} | {r['params']:,} | **{r['all']:.3f}** | "
                 + " | ".join(f"{r[str(d)]:.3f}" for d in depths) + f" | {r['train_s']} |")
L.append("| lookup reference (no learning) | | | " + f"{ref['all']:.3f} | "
         + " | ".join(f"{ref[str(d)]:.3f}" for d in depths) + " | |")
L += ["", "Mean over seeds:", "", "| model | all | " + " | ".join(f"depth {d}" for d in depths) + " |",
      "|---|---|" + "---|" * len(depths)]
for n, _ in MODELS:
    if res[n]:
        L.append(f"| {n} | {statistics.mean(r['all'] for r in res[n]):.3f} | "
                 + " | ".join(f"{statistics.mean(r[str(d)] for r in res[n]):.3f}" for d in depths) + " |")
L += ["", "Validation accuracy (300 fixed test items) by step:", ""]
for n, _ in MODELS:
    for r in res[n]:
        L.append(f"- {r['run']}: " + ", ".join(f"{s}: {v:.3f}" for s, v in r["val_curve"]))
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), a.name + "_notes.md")
if os.path.exists(notes):
    L += ["", open(notes).read().strip()]
open(os.path.join(a.doc, a.name + ".md"), "w").write("\n".join(L) + "\n")
json.dump({"lookup": ref, "models": res, "dataset": man}, open(os.path.join(a.doc, a.name + ".json"), "w"),
          indent=1)

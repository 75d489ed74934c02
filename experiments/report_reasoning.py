#!/usr/bin/env python3
"""Report for experiments/reasoning_baseline.sh: accuracy by proof depth and label
of every trained model, plus a text-matching reference that needs no learning.
Usage: report_reasoning.py OUT_DIR DOC_DIR NAME [NAME ...]"""
import json
import os
import sys

out, doc, names = sys.argv[1], sys.argv[2], sys.argv[3:]
report = os.environ.get("REPORT", "reasoning_baseline")
e1 = report != "reasoning_baseline"
manifest = json.load(open(os.path.join(out, "data", "manifest.json")))
test = [json.loads(l) for l in open(os.path.join(out, "data", "test.jsonl"))]
depths = sorted({x["depth"] for x in test})
labels = manifest["labels"]


def negate(q):  # "Anne is big." <-> "Anne is not big."
    return q.replace(" is not ", " is ") if " is not " in q else q.replace(" is ", " is not ", 1)


def lookup(x):
    """Reference without reasoning: True if the question is a stated fact, False if its
    negation is, else Unknown. Solves depth 0; shows what surface matching gives deeper."""
    facts = set(s.strip() + "." for s in x["theory"].split(".") if s.strip() and not s.strip().startswith(("If ", "All ")))
    q = x["question"]
    if manifest["mode"] == "closed":  # negation as failure: not stated -> False
        return "True" if q in facts else "False"
    return "True" if q in facts else "False" if negate(q) in facts else "Unknown"


def accuracy(rows):
    return sum(rows) / len(rows) if rows else float("nan")


ref = {"accuracy": accuracy([lookup(x) == x["label"] for x in test]),
       "by_depth": {str(d): accuracy([lookup(x) == x["label"] for x in test if x["depth"] == d]) for d in depths}}

models = {}
for n in names:
    run = os.path.join(out, n)
    ev = json.load(open(os.path.join(run, "eval.json")))
    cfg = json.load(open(os.path.join(run, "checkpoint", "config.json")))
    opts = json.load(open(os.path.join(run, "checkpoint", "train_options.json")))
    metrics = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    steps = [m for m in metrics if "loss" in m]
    vals = [(m["step"], m["val_acc"]) for m in metrics if "val_acc" in m]
    secs = int(open(os.path.join(run, "train_seconds")).read()) if os.path.exists(os.path.join(run, "train_seconds")) else None
    models[n] = {"config": cfg, "steps": opts["steps"], "batch": opts["batch"], "lr": opts["lr"],
                 "items_seen": opts["steps"] * opts["batch"] * opts["accum"], "train_seconds": secs,
                 "final_train_loss": sum(m["loss"] for m in steps[-20:]) / max(1, len(steps[-20:])),
                 "val_curve": vals, "eval": ev}

result = {"dataset": {k: manifest[k] for k in ("seed", "mode", "max_depth", "train_per_depth", "test_per_depth")},
          "test_items": len(test), "lookup_reference": ref, "models": models}
os.makedirs(doc, exist_ok=True)
json.dump(result, open(os.path.join(doc, report + ".json"), "w"), indent=2)

L = []
L.append("# E1 multi-hop rule reasoning: H-Model vs static stack\n" if e1 else
         "# E1 multi-hop rule reasoning: static-stack baseline\n")
L.append(f"Command: `{'experiments/hmodel_reasoning.sh' if e1 else 'experiments/reasoning_baseline.sh'}` (defaults). Dataset: `dynarch reasoning --train-per-depth "
         f"{manifest['train_per_depth']} --test-per-depth {manifest['test_per_depth']} --seed {manifest['seed']} "
         f"--max-depth {manifest['max_depth']}{' --closed-world' if manifest['mode'] == 'closed' else ''}"
         f"{'' if manifest.get('distractor_facts', 5) == 5 and manifest.get('distractor_rules', 6) == 6 else ' --distractor-facts %d --distractor-rules %d' % (manifest['distractor_facts'], manifest['distractor_rules'])}` "
         f"({manifest['mode']} world, depths 0–{manifest['max_depth']}, labels {', '.join(labels)}, balanced; "
         f"{manifest['counts']['train']['items']} training and {len(test)} test items). Chance = 1/{len(labels)}.\n")
for n, m in models.items():
    c = m["config"]
    mins = f"{m['train_seconds'] / 60:.1f} min" if m["train_seconds"] is not None else "?"
    hm = c.get("hmodel")
    routed = (f" as an H-Model pool: T = {hm['T']} iterations, {hm['routing']['granularity']} routing, "
              f"head init {hm['head']['init']}," if hm else " static stack,")
    L.append(f"- **{n}**: `{json.dumps(c['arch_layout'])}`{routed} pooling `{c.get('task', {}).get('pool', 'mean')}`, d_model {c['d_model'][0]}, d_intermediate "
             f"{c['d_intermediate'][0]}, {c['attn_cfg']['num_heads'][0]} heads; {m['steps']} steps × {m['batch']} "
             f"items ({m['items_seen']} items seen, {m['items_seen'] / manifest['counts']['train']['items']:.2f} epochs), "
             f"AdamW lr {m['lr']} (WSD), fp32, {mins} of training on the shared 2-core machine; "
             f"final training loss {m['final_train_loss']:.3f}.")
L.append("")
head = "| model | all | " + " | ".join(f"depth {d}" for d in depths) + " | " + " | ".join(labels) + " |"
L.append(head)
L.append("|" + "---|" * (2 + len(depths) + len(labels)))
for n, m in models.items():
    e = m["eval"]
    L.append(f"| {n} | **{e['accuracy']:.3f}** | " + " | ".join(f"{e['by_depth'][str(d)]['accuracy']:.3f}" for d in depths)
             + " | " + " | ".join(f"{e['by_label'][l]['accuracy']:.3f}" for l in labels) + " |")
L.append(f"| lookup reference (no learning) | {ref['accuracy']:.3f} | "
         + " | ".join(f"{ref['by_depth'][str(d)]:.3f}" for d in depths) + " | " + " | ".join("–" for _ in labels) + " |")
L.append("")
L.append("Accuracy on all test items (`dynarch eval -m RUN --file test.jsonl`); per-label columns are recall "
         "of that label. The lookup reference answers "
         + ("True when the question is a stated fact and False otherwise" if manifest["mode"] == "closed" else
            "True/False when the question (or its negation) is a stated fact and Unknown otherwise")
         + ": it solves depth 0 and shows what surface matching is worth deeper.\n")
for n, m in models.items():
    L.append(f"Validation accuracy of {n} (fixed 300 test items) by step: "
             + ", ".join(f"{s}: {a:.3f}" for s, a in m["val_curve"]) + ".\n")
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), report + "_notes.md")
if os.path.exists(notes):  # hand-written reading of the committed run
    L.append(open(notes).read().strip() + "\n")
L.append(f"Raw numbers: [{report}.json]({report}.json)." + ("" if e1 else " The H-Model comparison (E1 proper) is "
         "[hmodel_reasoning.md](hmodel_reasoning.md).") + "\n")
open(os.path.join(doc, report + ".md"), "w").write("\n".join(L))

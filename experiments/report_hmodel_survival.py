#!/usr/bin/env python3
"""Report for experiments/hmodel_survival.sh (E3)."""
import json, os, sys

sys.path.insert(0, os.path.dirname(__file__))
from svgplot import chart  # noqa: E402

out, doc, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
VARIANTS = [("self0", "λ_self = 0"), ("self0.01", "λ_self = 0.01"), ("self0.1", "λ_self = 0.1"), ("noself", "allow_self = false")]


def smooth(pts, k=10):
    res, acc = [], []
    for x, y in pts:
        acc = (acc + [y])[-k:]
        res.append((x, sum(acc) / len(acc)))
    return res


data = {v: [json.loads(l) for l in open(os.path.join(out, v, "metrics.jsonl"))] for v, _ in VARIANTS}
chart({lab: smooth([(r["step"], r["hmodel_self"]) for r in data[v] if "hmodel_self" in r]) for v, lab in VARIANTS},
      "Self-loop mass over training (mean c_jj of active layer senders, 10-step mean)", "step", "self-loop mass",
      os.path.join(doc, "hmodel_self_mass.svg"))
chart({lab: smooth([(r["step"], r["loss"]) for r in data[v] if "loss" in r], 20) for v, lab in VARIANTS},
      "Training loss (20-step mean)", "step", "loss (nats/byte)", os.path.join(doc, "hmodel_survival_loss.svg"))
md = ["# H-Model: self-routing (\"survival\") with and without the regulariser (E3, issue #5)", "",
      f"Command: `experiments/hmodel_survival.sh {steps}`. The per-token H-Model byte LM of E2 (pool `m1T1f1g1`, d 128,",
      f"T = 4; `experiments/configs/hm_lang.json`) on the English corpus, {steps} x 8 x 256 bytes, lr 2e-3. λ_self adds",
      "λ_self · mean(c_jj) over active layer senders, steps and positions to the loss (hmodel.md §8); `allow_self = false`",
      "sets the self logit to −∞. Self-loop mass as logged in metrics.jsonl every step (`hmodel_self`, per layer",
      "`hmodel_self.{j}`); values at the end are the mean of the last 20 steps.", "",
      "| variant | final self mass | per layer (1..L) | val bpb | final train loss |", "|---|---|---|---|---|"]
for v, lab in VARIANTS:
    tr = [r for r in data[v] if "loss" in r][-20:]
    va = [r for r in data[v] if "val_bpb" in r]
    L = len([k for k in tr[-1] if k.startswith("hmodel_self.")])
    per = [sum(r[f"hmodel_self.{j}"] for r in tr) / len(tr) for j in range(1, L + 1)]
    md.append(f"| {lab} | {sum(r['hmodel_self'] for r in tr) / len(tr):.4f} | {' '.join(f'{x:.3f}' for x in per)} | "
              f"{va[-1]['val_bpb']:.4f} | {sum(r['loss'] for r in tr) / len(tr):.4f} |")
md += ["", "![self mass](hmodel_self_mass.svg)", "", "![loss](hmodel_survival_loss.svg)", ""]
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hmodel_survival_notes.md")
if os.path.exists(notes):  # hand-written reading of the committed run
    md += ["", open(notes).read().strip(), ""]
open(os.path.join(doc, "hmodel_survival.md"), "w").write("\n".join(md))

#!/usr/bin/env python3
"""Report for experiments/hmodel_compose_gap.sh (E5, closing the gap, issue #19)."""
import json, os, re, statistics, sys

out, doc, src_steps, steps, long_steps, seeds, variants, T = sys.argv[1:9]
seeds, variants = seeds.split(), variants.split()
LANGS = ["en", "code"]
DESC = {"fresh": f"fresh IN/OUT, {steps} steps", "fresh_long": f"fresh IN/OUT, {long_steps} steps",
        "in_en": f"IN/OUT from the English source, {steps} steps",
        "in_code": f"IN/OUT from the code source, {steps} steps",
        "in_en_w": f"IN/OUT from en, chains reproduced (norm weighted, init_c 6), {steps} steps",
        "in_en_w_long": f"IN/OUT from en, chains reproduced, {long_steps} steps"}
# ≈: train seconds summed from the steps' times where the run has no train_seconds file


def bpb(run, lang):
    m = re.search(r": ([0-9.]+) bpb", open(os.path.join(out, run, f"eval_{lang}.txt")).read())
    return float(m.group(1)) if m else float("nan")


def share_en(run, lang):  # share of the walk's node visits on the English source's layers (nodes 1-4)
    u = json.load(open(os.path.join(out, run, f"routes_{lang}.json")))["summary"]["usage"]
    return sum(u[:4]) / max(sum(u[:8]), 1e-9)


def step_seconds(run):  # runs without train_seconds: the sum of their steps' times (3-8 s under the wall time)
    t = 0.0
    for line in open(os.path.join(out, run, "metrics.jsonl")):
        m = json.loads(line)
        if "bytes_per_s" in m:
            t += 8 * 256 / m["bytes_per_s"]
    return f"≈{t:.0f}"


def mean(v):
    return statistics.mean(v) if v else float("nan")


src = {l: bpb(f"src_{l}", l) for l in LANGS}
res = {"sources": {f"src_{s}": {l: bpb(f"src_{s}", l) for l in LANGS} for s in LANGS}, "variants": {}}
md = ["# E5 composition: what closes the gap to the sources (issue #19)", "",
      f"Command: `experiments/hmodel_compose_gap.sh` (SRC_STEPS={src_steps}, STEPS={steps}, LONG_STEPS={long_steps}, "
      f"SEEDS=\"{' '.join(seeds)}\", T={T}). Sources: two `T4` byte LMs (d 128), {src_steps} × 8 × 256 bytes, one on English "
      "(`data/en`), one on code (`data/code`), seed 0. Composed H-Model: their 8 layers **frozen** as nodes 1–4 (English) "
      f"and 5–8 (code), T = {T}, `head.init = chain` within each source (IN → nodes 1 and 5, 4 → OUT, 8 → OUT), trained on "
      "alternating 4 KiB blocks of English and code (batch 8 × 256 bytes, lr 3e-3); trainable: the 9 routing heads, the "
      "byte embeddings (IN), the final norm and the LM head (OUT). bpb on the first 64 KiB of each validation file; "
      "'en share' = share of the walk's node visits on the English source's layers (`dynarch routes`, first 4 KiB).", "",
      "| model | bpb en | bpb code | gap en | gap code | en share (en text) | en share (code text) | train s |",
      "|---|---|---|---|---|---|---|---|"]
for s in LANGS:
    md.append(f"| src_{s} | {bpb(f'src_{s}', 'en'):.3f} | {bpb(f'src_{s}', 'code'):.3f} | | | | | |")
for v in variants:
    runs = [f"{v}_s{s}" for s in seeds]
    rows = []
    for r in runs:
        t = open(os.path.join(out, r, "train_seconds")).read().strip() if os.path.exists(
            os.path.join(out, r, "train_seconds")) else step_seconds(r)
        rows.append({"run": r, **{l: bpb(r, l) for l in LANGS}, "en_share_en": share_en(r, "en"),
                     "en_share_code": share_en(r, "code"), "train_s": t})
    res["variants"][v] = rows
    for x in rows:
        md.append(f"| {x['run']} ({DESC.get(v, v)}) | {x['en']:.3f} | {x['code']:.3f} | {x['en'] - src['en']:+.3f} | "
                  f"{x['code'] - src['code']:+.3f} | {x['en_share_en']:.2f} | {x['en_share_code']:.2f} | {x['train_s']} |")
md += ["", "gap = composed bpb − the source's bpb on its own language (≤ 0: the composition matches the source).", "",
       "Mean over seeds:", "", "| variant | bpb en | bpb code | matches both sources |", "|---|---|---|---|"]
for v in variants:
    e, c = mean([x["en"] for x in res["variants"][v]]), mean([x["code"] for x in res["variants"][v]])
    ok = all(x["en"] <= src["en"] + 1e-9 and x["code"] <= src["code"] + 1e-9 for x in res["variants"][v])
    md.append(f"| {v} | {e:.3f} | {c:.3f} | {'yes' if ok else 'no'} |")
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hmodel_compose_gap_notes.md")
if os.path.exists(notes):
    md += ["", open(notes).read().strip()]
open(os.path.join(doc, "hmodel_compose_gap.md"), "w").write("\n".join(md) + "\n")
json.dump(res, open(os.path.join(doc, "hmodel_compose_gap.json"), "w"), indent=1)

#!/usr/bin/env python3
"""Report for experiments/hmodel_compose.sh (E5)."""
import json, os, re, sys

out, doc, src_steps, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
LANGS = ["en", "zh", "code"]


def bpb(run, lang):
    m = re.search(r": ([0-9.]+) bpb", open(os.path.join(out, run, f"eval_{lang}.txt")).read())
    return float(m.group(1)) if m else float("nan")


summ = {"en": json.load(open(os.path.join(out, "cmp_en_code.json")))["summary_a"],
        "code": json.load(open(os.path.join(out, "cmp_en_code.json")))["summary_b"],
        "zh": json.load(open(os.path.join(out, "cmp_en_zh.json")))["summary_b"]}
js = {p: json.load(open(os.path.join(out, f"cmp_{p}.json")))["weighted"] for p in ("en_code", "en_zh", "zh_code")}
md = ["# H-Model composed from two pretrained byte LMs (E5, issue #5)", "",
      f"Command: `experiments/hmodel_compose.sh {src_steps} {steps}`. Sources: two `T4` byte LMs (d 128,",
      f"`experiments/configs/src_t4.json`), {src_steps} x 8 x 256 bytes each, one on English, one on code. The H-Model",
      "(`runs/.../composed.json`) pools their 8 layers as nodes 1–4 (English) and 5–8 (code), **frozen**, with",
      f"`head.init = chain` within each source and T = 8, and trains {steps} x 8 x 256 bytes of the mixed corpus;",
      "trainable: the 9 routing heads, the embeddings, the final norm and the LM head (the sources' own embeddings",
      "differ, so the composed model learns its own byte interface). bpb on the first 64 KiB of each validation file.", "",
      "| model | bpb en | bpb zh | bpb code |", "|---|---|---|---|"]
for m in ("src_en", "src_code", "composed"):
    md.append(f"| {m} | " + " | ".join(f"{bpb(m, l):.3f}" for l in LANGS) + " |")
md += ["", "## Which source's layers each language uses", "",
       "Walk visits per node (hmodel.md §11) over 32 analysis windows per language, summed per source.", "",
       "| language | E[depth] | visits nodes 1–4 (en source) | visits nodes 5–8 (code source) | share en-source | per node |",
       "|---|---|---|---|---|---|"]
for l in LANGS:
    u = summ[l]["usage"]
    a, b = sum(u[:4]), sum(u[4:8])
    md.append(f"| {l} | {summ[l]['expected_depth']:.3f} | {a:.3f} | {b:.3f} | {a / max(a + b, 1e-9):.3f} | "
              f"{' '.join(f'{x:.2f}' for x in u)} |")
md += ["", "JS divergence of the routing between languages (occupancy-weighted, base 2): " +
       ", ".join(f"{k.replace('_', '–')} {v:.3f}" for k, v in js.items()) + ".", "",
       "Routing graphs: [en](hmodel_compose_en.svg), [code](hmodel_compose_code.svg).", ""]
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hmodel_compose_notes.md")
if os.path.exists(notes):  # hand-written reading of the committed run
    md += ["", open(notes).read().strip(), ""]
open(os.path.join(doc, "hmodel_compose.md"), "w").write("\n".join(md))

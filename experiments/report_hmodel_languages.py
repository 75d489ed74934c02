#!/usr/bin/env python3
"""Report for experiments/hmodel_languages.sh (E2): tables + SVG figures."""
import json, math, os, re, sys

sys.path.insert(0, os.path.dirname(__file__))
from svgplot import chart  # noqa: E402

out, doc, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
LANGS = ["en", "zh", "code"]


def bpb(run, lang):
    m = re.search(r": ([0-9.]+) bpb", open(os.path.join(out, run, f"eval_{lang}.txt")).read())
    return float(m.group(1)) if m else float("nan")


def metrics(run):
    return [json.loads(l) for l in open(os.path.join(out, run, "metrics.jsonl"))]


def walk(routes):
    """Per-token expected depth and per-step layer occupancy from a routes JSON export."""
    L, T = routes["L"], routes["T"]
    steps = routes["steps"]
    ntok = len(steps[0]["C"][0])
    depth, occ = [], []
    for t in range(ntok):
        rho = {0: 1.0}
        exits, occ_t = [], []
        for r, st in enumerate(steps):
            e, nxt = 0.0, {}
            for si, i in enumerate(st["senders"]):
                row = st["C"][si][t]
                s = sum(row)
                if s <= 0 or rho.get(i, 0) == 0:
                    continue
                e += rho[i] * row[L] / s
                if r < T:
                    for k in range(L):
                        nxt[k + 1] = nxt.get(k + 1, 0) + rho[i] * row[k] / s
            exits.append(e)
            if r < T:
                occ_t.append([nxt.get(j, 0.0) for j in range(1, L + 1)])
            rho = nxt
        depth.append(sum(r * e for r, e in enumerate(exits)) + T * (1 - sum(exits)))
        occ.append(occ_t)
    return depth, occ


# 1. bpb per language
rows = []
for run in ("hmodel", "plain"):
    m = [r for r in metrics(run) if "loss" in r]
    secs = float(open(os.path.join(out, run, "train_seconds")).read()) if os.path.exists(os.path.join(out, run, "train_seconds")) else float("nan")
    rows.append((run, [bpb(run, l) for l in LANGS], sum(r["loss"] for r in m[-20:]) / min(20, len(m)), secs))
chart({run: [(r["step"], r["loss"]) for r in metrics(run) if "loss" in r] for run in ("hmodel", "plain")},
      "Training loss on the mixed corpus", "step", "loss (nats/byte)", os.path.join(doc, "hmodel_lang_loss.svg"))

# 2. routing per language (summaries of the first half of each language's windows)
summ = {l: json.load(open(os.path.join(out, f"cmp_{l}_{l}2.json")))["summary_a"] for l in LANGS}
ctrl = {l: json.load(open(os.path.join(out, f"cmp_{l}_{l}2.json")))["weighted"] for l in LANGS}
js = {}
for a, b in (("en", "zh"), ("en", "code"), ("zh", "code")):
    c = json.load(open(os.path.join(out, f"cmp_{a}_{b}.json")))
    js[(a, b)] = js[(b, a)] = c["weighted"]

# 3. switch windows: per-token expected depth and step-1 occupancy
sw_md = []
for sw in ("en_code", "en_zh"):
    r = json.load(open(os.path.join(out, f"switch_{sw}.json")))
    meta = json.load(open(os.path.join(out, "sets", f"switch_{sw}.json")))
    depth, occ = walk(r)
    offs = [tok["offset"] for tok in r["tokens"]]
    series = {"E[depth]": [(o, d) for o, d in zip(offs, depth) if o >= 0]}
    L = r["L"]
    names = [n["name"] for n in r["nodes"][1:L + 1]]
    for j in range(L):
        series[f"occupancy {names[j]} (r=1)"] = {"pts": [(o, oc[0][j]) for o, oc in zip(offs, occ) if o >= 0], "dash": True}
    chart(series, f"Per-byte routing across a {meta['lang']} switch at byte {meta['switch']}", "byte offset",
          "depth / occupancy", os.path.join(doc, f"hmodel_switch_{sw}.svg"))
    before = [d for o, d in zip(offs, depth) if 0 <= o < meta["switch"]]
    after = [d for o, d in zip(offs, depth) if o >= meta["switch"]]
    sw_md.append((meta["lang"], meta["switch"], sum(before) / max(1, len(before)), sum(after) / max(1, len(after))))

f = lambda x: f"{x:.3f}"
hm = json.load(open(os.path.join(out, "hmodel", "checkpoint", "config.json")))
md = ["# H-Model: input-dependent routing on English / Chinese / code (E2, issue #5)", "",
      f"Command: `experiments/hmodel_languages.sh {steps}`. Corpus `data/mixed` (equal byte shares of en, zh, code,",
      "documents interleaved; data.md §5). Models: a per-token H-Model byte LM over the pool `m1T1f1g1` (Mamba-2,",
      f"attention+MLP, SwiGLU, GRU; d 128, T = {hm['hmodel']['T']}, softmax routing α = 1, count norm — `experiments/configs/hm_lang.json`)",
      "and the plain stack of the same four layers (`hm_lang_plain.json`), each trained for the same steps",
      f"({steps} x 8 x 256 bytes, lr 2e-3, --dtype auto). bpb on the first 64 KiB of each language's validation file.", "",
      "| model | bpb en | bpb zh | bpb code | final train loss | training time (s) |", "|---|---|---|---|---|---|"]
for run, b, loss, secs in rows:
    md.append(f"| {run} | {f(b[0])} | {f(b[1])} | {f(b[2])} | {f(loss)} | {secs:.0f} |")
md += ["", "![loss](hmodel_lang_loss.svg)", "",
       "## Routing per language", "",
       "Over 32 analysis windows of 512 bytes per language (validation text). Expected depth in iterations (of T);",
       "usage = walk visits per layer node; self = mean self-loop weight of active layer senders; entropy = mean",
       "normalised routing entropy.", "",
       "| language | E[depth] | exit profile e_0..e_T | usage per node | self mass | entropy | input dependence (mean) |",
       "|---|---|---|---|---|---|---|"]
for l in LANGS:
    s = summ[l]
    idep = s.get("input_dependence")
    flat = [v for row in idep for v in (row if isinstance(row, list) else [row]) if v is not None] if isinstance(idep, list) else []
    md.append(f"| {l} | {f(s['expected_depth'])} | {' '.join(f'{x:.2f}' for x in s['exit_profile'])} | "
              f"{' '.join(f'{x:.2f}' for x in s['usage'])} | {' '.join(f'{x:.2f}' for x in s['self_mass'])} | "
              f"{f(s['mean_entropy'])} | {f(sum(flat) / len(flat)) if flat else '–'} |")
md += ["", "## Jensen–Shannon divergence between languages", "",
       "Base-2 JS of the mean routing rows per (step, sender), averaged with the mean walk occupancy as weights",
       "(hmodel.md §11). Diagonal: the same language's other half of windows (sampling noise floor).", "",
       "| | en | zh | code |", "|---|---|---|---|"]
for a in LANGS:
    md.append(f"| {a} | " + " | ".join(f(ctrl[a]) if a == b else f(js[(a, b)]) for b in LANGS) + " |")
md += ["", "Routing graphs per language (collapsed walk flow of 2 KiB of windows; trellis + per-step heat maps):",
       "[en](hmodel_routes_en.svg), [zh](hmodel_routes_zh.svg), [code](hmodel_routes_code.svg)"
       " (DOT: `hmodel_routes_<lang>.dot`).", "",
       "## Across a language switch", "",
       "| window | switch at byte | mean E[depth] before | after |", "|---|---|---|---|"]
for lang, at, b, a in sw_md:
    md.append(f"| {lang} | {at} | {f(b)} | {f(a)} |")
md += ["", "![switch en>code](hmodel_switch_en_code.svg)", "", "![switch en>zh](hmodel_switch_en_zh.svg)", ""]
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hmodel_languages_notes.md")
if os.path.exists(notes):  # hand-written reading of the committed run
    md += ["", open(notes).read().strip(), ""]
open(os.path.join(doc, "hmodel_languages.md"), "w").write("\n".join(md))
json.dump({"bpb": {r[0]: dict(zip(LANGS, r[1])) for r in rows}, "js": {f"{a}-{b}": v for (a, b), v in js.items()},
           "js_control": ctrl, "summary": summ}, open(os.path.join(doc, "hmodel_languages.json"), "w"), indent=1)

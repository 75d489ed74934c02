#!/usr/bin/env python3
"""Reports for experiments/hmodel_sweeps.sh: E4 sweeps and the aggregation check (issue #19)."""
import json, math, os, statistics, sys

sys.path.insert(0, os.path.dirname(__file__))
from svgplot import chart  # noqa: E402

out, doc, steps, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
CMD = f"experiments/hmodel_sweeps.sh {steps}"


def load(v, s):
    run = os.path.join(out, f"{v}_s{s}")
    m = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    val = [r["val_bpb"] for r in m if "val_bpb" in r]
    r = {"bpb": val[-1] if val else float("nan"),
         "sps": float(open(os.path.join(run, "train_seconds")).read()) / steps}
    rp = os.path.join(run, "routes.json")
    if os.path.exists(rp):
        sm = json.load(open(rp))["summary"]
        r.update(depth=sm["expected_depth"], ent=sm["mean_entropy"], calls=sm["calls"], dense=sm["calls_dense"],
                 rms_in=sm["rms_in"], rms_out=sm["rms_out"])
    return r


def agg(v):
    rs = [load(v, s) for s in seeds]
    res = {}
    for k in rs[0]:
        if isinstance(rs[0][k], (int, float)):
            xs = [r[k] for r in rs]
            res[k] = (statistics.mean(xs), (max(xs) - min(xs)) / 2)
    res["runs"] = rs
    return res


def pm(x, f="{:.3f}"):
    return (f + " ± " + f).format(*x) if x[1] > 0 else f.format(x[0])


V = {v: agg(v) for v in ["plain", "count", "weighted", "a0.5", "a2", "a4", "a8", "asched", "T2", "T8", "ld0.1", "ld1"]}
V["a1"] = V["count"]
head = (f"Command: `{CMD}` (seeds {', '.join(seeds)}; values are the mean ± half the range over seeds). Task: per-token "
        f"byte LM on the English corpus (data.md), {steps} steps × 8 × 128 bytes, lr 3e-3, fp32, one thread per run "
        "(two runs at a time on the shared 2-core machine, so seconds per step are indicative only). Pool `T2f2` "
        "(2 attention + 2 SwiGLU nodes, d 64), T = 4, softmax routing, α = 1, norm count unless the row says otherwise; "
        "`plain` is the static T2f2 stack (same layers, no routing). bpb: validation, 64 windows of 128 bytes. "
        "Expected depth (of T), routing entropy (normalised) and layer calls from `dynarch routes` on the first KiB "
        "of the validation text.")
row = lambda name, r: (f"| {name} | {pm(r['bpb'])} | {pm(r['depth'], '{:.2f}') if 'depth' in r else '–'} | "
                       f"{pm(r['ent'], '{:.3f}') if 'ent' in r else '–'} | {pm(r['sps'], '{:.3f}')} |")
md = ["# H-Model sweeps: α, T and λ_depth (E4, issue #19)", "", head, "",
      "| variant | val bpb | E[depth] | entropy | s / step |", "|---|---|---|---|---|", row("plain stack", V["plain"])]
for name, v in [("α 0.5", "a0.5"), ("α 1 (default)", "a1"), ("α 2", "a2"), ("α 4", "a4"), ("α 8", "a8"),
                ("α linear 1 → 8", "asched"), ("T 2", "T2"), ("T 4 (= L)", "count"), ("T 8", "T8"),
                ("λ_depth 0.1", "ld0.1"), ("λ_depth 1", "ld1")]:
    md.append(row(name, V[v]))
alphas = [0.5, 1, 2, 4, 8]
chart({"val bpb": [(a, V[f"a{a:g}"]["bpb"][0]) for a in alphas],
       "plain stack": {"pts": [(a, V["plain"]["bpb"][0]) for a in alphas], "dash": True}},
      "Validation bpb vs α (T = 4)", "α", "bpb", os.path.join(doc, "hmodel_sweep_alpha.svg"))
chart({"normalised entropy": [(a, V[f"a{a:g}"]["ent"][0]) for a in alphas],
       "E[depth] / T": [(a, V[f"a{a:g}"]["depth"][0] / 4) for a in alphas]},
      "Routing entropy and expected depth vs α", "α", "value", os.path.join(doc, "hmodel_sweep_alpha_routing.svg"))
md += ["", "![bpb vs alpha](hmodel_sweep_alpha.svg)", "", "![routing vs alpha](hmodel_sweep_alpha_routing.svg)", ""]
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hmodel_sweeps_notes.md")
if os.path.exists(notes):
    md += [open(notes).read().strip(), ""]
open(os.path.join(doc, "hmodel_sweeps.md"), "w").write("\n".join(md))
json.dump({k: v["runs"] for k, v in V.items()}, open(os.path.join(doc, "hmodel_sweeps.json"), "w"), indent=1)

# Aggregation: RMS of node inputs / outputs per iteration (mean over nodes and seeds).
def rms(v, key):
    per = []
    for r in V[v]["runs"]:
        per.append([statistics.mean([x for x in step if x is not None and math.isfinite(x)] or [float("nan")])
                    for step in r[key][1:]])
    return [statistics.mean(c) for c in zip(*per)]

md = ["# H-Model aggregation: the paper's count rule vs a norm-preserving weighted mean (issue #19)", "", head, "",
      "`count` (default, the paper's rule): X_j = Σ_i c_ij h_i / #contributors. `weighted`: X_j = Σ_i c_ij h_i / Σ_i c_ij "
      "(a convex combination of the senders' states, so its RMS stays at the senders' scale).", "",
      "| norm | val bpb | E[depth] | " + " | ".join(f"RMS in/out it. {r}" for r in range(1, 5)) + " |",
      "|---|---|---|" + "---|" * 4]
for v in ["count", "weighted"]:
    ri, ro = rms(v, "rms_in"), rms(v, "rms_out")
    md.append(f"| {v} | {pm(V[v]['bpb'])} | {pm(V[v]['depth'], '{:.2f}')} | " +
              " | ".join(f"{a:.3f} / {b:.3f}" for a, b in zip(ri, ro)) + " |")
md.append(f"| plain stack | {pm(V['plain']['bpb'])} | – | | | | |")
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hmodel_aggregation_notes.md")
if os.path.exists(notes):
    md += ["", open(notes).read().strip(), ""]
open(os.path.join(doc, "hmodel_aggregation.md"), "w").write("\n".join(md))

#!/usr/bin/env python3
"""Input sets for the H-Model routing experiments from data/mixed/windows.{bin,jsonl}:
SETS/<lang>.jsonl and <lang>2.jsonl (disjoint halves), <lang>_concat.txt (first 4 windows
joined), switch_<a>_<b>.txt (one switch window) + switch_<a>_<b>.json (its switch offset)."""
import json, os, sys

mixed, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
blob = open(os.path.join(mixed, "windows.bin"), "rb").read()
meta = [json.loads(l) for l in open(os.path.join(mixed, "windows.jsonl"))]
by = {}
for m in meta:
    text = blob[m["offset"]:m["offset"] + m["bytes"]].decode("utf-8")
    by.setdefault(m["lang"], []).append((m, text))
for lang in ("en", "zh", "code"):
    items = by[lang]
    half = len(items) // 2
    for name, part in ((lang, items[:half]), (lang + "2", items[half:])):
        with open(os.path.join(out, name + ".jsonl"), "w") as f:
            for _, t in part:
                f.write(json.dumps({"text": t}) + "\n")
    with open(os.path.join(out, lang + "_concat.txt"), "w") as f:
        f.write("".join(t for _, t in items[:4]))
for a, b in (("en", "code"), ("en", "zh")):
    m, t = by[f"{a}>{b}"][0]
    open(os.path.join(out, f"switch_{a}_{b}.txt"), "w").write(t)
    json.dump({"switch": m["switch"], "lang": m["lang"]}, open(os.path.join(out, f"switch_{a}_{b}.json"), "w"))

#!/usr/bin/env python3
"""Per-op self-time table from the Chrome trace that profile_step prints.
Self time = an event's duration minus its direct children's (events nested by time
on the same thread); a custom op appears as dynarch::NAME (forward) and CppNode<...Fn> (backward).
Usage: ./build/profile_step [options] 2>/dev/null > trace.json
       bench/profile_summary.py trace.json [TOP=25]"""
import collections
import json
import sys

if len(sys.argv) < 2:
    sys.exit(__doc__)
events = [e for e in json.load(open(sys.argv[1])) if e.get("ph") == "X"]
by_thread = collections.defaultdict(list)
for e in events:
    by_thread[e["tid"]].append(e)
self_us, calls, total = collections.Counter(), collections.Counter(), 0.0
for evs in by_thread.values():
    evs.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack = []
    for e in evs:
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
            stack.pop()
        if stack:
            stack[-1]["children"] = stack[-1].get("children", 0.0) + e["dur"]
        else:
            total += e["dur"]
        stack.append(e)
    for e in evs:
        self_us[e["name"]] += e["dur"] - e.get("children", 0.0)
        calls[e["name"]] += 1
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
print(f"recorded op time: {total / 1e3:.1f} ms (custom ops: forward = dynarch::NAME, backward = CppNode<...Fn>)")
print("| op | self ms | share | calls |\n|---|---|---|---|")
for name, us in self_us.most_common(top):
    print(f"| `{name}` | {us / 1e3:.1f} | {100 * us / total:.1f} % | {calls[name]} |")

#!/usr/bin/env python3
"""Summarise a chrome trace from bench/profile_step: self time per op name."""
import json, sys, collections
ev = json.load(sys.stdin)
ev = ev["traceEvents"] if isinstance(ev, dict) else ev
ev = [e for e in ev if e.get("ph") == "X"]
# self time = duration minus durations of direct children on the same thread
ev.sort(key=lambda e: (e.get("tid"), e["ts"], -e["dur"]))
self_t = collections.Counter(); count = collections.Counter()
stack = []
for e in ev:
    while stack and (stack[-1]["tid"] != e.get("tid") or e["ts"] >= stack[-1]["ts"] + stack[-1]["dur"]):
        stack.pop()
    if stack:
        self_t[stack[-1]["name"]] -= e["dur"]
    self_t[e["name"]] += e["dur"]; count[e["name"]] += 1
    stack.append(e)
total = sum(self_t.values())
print(f"total self time {total/1e3:.1f} ms")
for name, t in self_t.most_common(int(sys.argv[1]) if len(sys.argv) > 1 else 25):
    print(f"{t/1e3:9.2f} ms {100*t/total:5.1f}%  {count[name]:6d}x  {name}")

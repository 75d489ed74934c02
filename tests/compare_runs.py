#!/usr/bin/env python3
"""Compares two training runs: the loss of every step and the validation bpb
(metrics.jsonl), the weights and (--state) the optimizer moments of their
checkpoints. Prints the largest relative differences; exits 1 above the
tolerances. Usage: compare_runs.py RUN_A RUN_B [--loss-tol X] [--weight-tol X] [--state]"""
import argparse, json, struct, sys
from array import array


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {t['dtype']}, only F32 is compared")
        a, b = t["data_offsets"]
        out[name] = array("f", data[a:b])
    return out


def metrics(run):
    steps, vals = {}, {}
    for line in open(f"{run}/metrics.jsonl"):
        j = json.loads(line)
        if "loss" in j:
            if j["step"] in steps:
                raise SystemExit(f"{run}/metrics.jsonl: step {j['step']} twice")
            steps[j["step"]] = j["loss"]
        for k in ("val_bpb", "val_acc"):
            if k in j:
                vals[j["step"]] = j[k]
    return steps, vals


def rel(x, y):
    return abs(x - y) / max(abs(x), abs(y), 1e-30)


def tensors_diff(a, b, what):
    if a.keys() != b.keys():
        raise SystemExit(f"{what}: different tensor names: {sorted(a.keys() ^ b.keys())[:5]}")
    worst, where = 0.0, ""
    for k in a:
        # Relative to the tensor's scale: elementwise ratios of near-zero values mean nothing.
        scale = max(max((abs(v) for v in a[k]), default=0.0), 1e-30)
        d = max((abs(x - y) for x, y in zip(a[k], b[k])), default=0.0) / scale
        if d > worst:
            worst, where = d, k
    return worst, where


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a"), p.add_argument("b")
    p.add_argument("--loss-tol", type=float, default=1e-6)
    p.add_argument("--weight-tol", type=float, default=1e-5)
    p.add_argument("--state", action="store_true")
    o = p.parse_args()
    (sa, va), (sb, vb) = metrics(o.a), metrics(o.b)
    if sorted(sa) != sorted(sb) or sorted(sa) != list(range(1, len(sa) + 1)):
        raise SystemExit(f"steps differ or are not 1..N once each: {sorted(sa)} vs {sorted(sb)}")
    loss = max(rel(sa[s], sb[s]) for s in sa)
    val = max((rel(va[s], vb[s]) for s in va if s in vb), default=0.0)
    w, wk = tensors_diff(read_safetensors(f"{o.a}/checkpoint/model.safetensors"),
                         read_safetensors(f"{o.b}/checkpoint/model.safetensors"), "weights")
    print(f"steps {len(sa)}: loss rel diff {loss:.2e}, val rel diff {val:.2e}, weights {w:.2e} ({wk})")
    bad = loss > o.loss_tol or val > o.loss_tol or w > o.weight_tol
    if o.state:
        ta = read_safetensors(f"{o.a}/checkpoint/trainer.safetensors")
        tb = read_safetensors(f"{o.b}/checkpoint/trainer.safetensors")
        s, sk = tensors_diff(ta, tb, "optimizer state")
        print(f"optimizer state {s:.2e} ({sk})")
        bad |= s > o.weight_tol
    if bad:
        print(f"FAIL: above loss-tol {o.loss_tol} / weight-tol {o.weight_tol}")
        sys.exit(1)


main()

#!/usr/bin/env python3
"""Exit 0 when two trainer.safetensors files hold the same optimizer state (byte for byte)
and the same trainer record except metrics_bytes: the size of metrics.jsonl, whose
wall-clock bytes_per_s fields make two identical runs' files differ in length."""
import json, sys

def load(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    head = json.loads(raw[8:8 + n])
    rec = json.loads(head.pop("__metadata__")["trainer"])
    rec.pop("metrics_bytes", None)
    return head, rec, raw[8 + n:]

sys.exit(0 if load(sys.argv[1]) == load(sys.argv[2]) else 1)

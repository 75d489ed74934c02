#!/usr/bin/env python3
"""E1 input formats (issue #19): rewrite a `dynarch reasoning` JSONL split as
{"text", "label", "depth"} items that `dynarch train`/`eval` read (data/labeled.h).

  --order qt   question first: "Q: <question>\\n<theory>" (a causal model reads the
               question before the theory, so every theory position can compare
               itself with it); default tq = the generator's "<theory>\\nQ: <question>".
  --prompt     end each text with "\nA: " (the LM corpus's answer prompt, so a classifier
               initialised from the LM pools the position that predicted the answer).
  --lm FILE    also write the items as a byte corpus for LM pre-training:
               "<text>\\nA: <label>\\n" per item (the label bytes are the answer).
Usage: hmodel_e1_format.py IN.jsonl OUT.jsonl [--order qt|tq] [--prompt] [--lm FILE]
"""
import argparse
import json


def text_of(it, order):
    if order == "qt":
        return "Q: " + it["question"] + "\n" + it["theory"]
    return it["theory"] + "\nQ: " + it["question"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--order", choices=["qt", "tq"], default="tq")
    ap.add_argument("--prompt", action="store_true")
    ap.add_argument("--lm")
    a = ap.parse_args()
    lm = []
    with open(a.inp) as f, open(a.out, "w") as g:
        for line in f:
            it = json.loads(line)
            t = text_of(it, a.order)
            g.write(json.dumps({"text": t + ("\nA: " if a.prompt else ""), "label": it["label"], "depth": it["depth"]}) + "\n")
            lm.append(t + "\nA: " + it["label"] + "\n")
    if a.lm:
        with open(a.lm, "w") as g:
            g.write("".join(lm))


if __name__ == "__main__":
    main()

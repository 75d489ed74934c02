#!/usr/bin/env python3
"""E1 probe (issue #19): does a byte LM pre-trained on "<theory>\nQ: <question>\nA: <label>\n"
answer? Greedy next byte after each of the first N test prompts ("...\nA: "): T = True, F = False.
Usage: hmodel_e1_lm_answers.py MODEL TEST.jsonl N   (TEST from hmodel_e1_format.py --prompt)"""
import json,subprocess,sys
model, test, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
items=[json.loads(l) for l in open(test)]
res={}; preds={}
for i,it in enumerate(items[:n]):
    o=subprocess.run(['./build/dynarch','--threads','1','--no-progress','generate','-m',model,'-p',it['text'],'-n','1','--temperature','0'],capture_output=True,text=True).stdout
    c=o[len(it['text']):][:1]
    pred='True' if c=='T' else 'False' if c=='F' else '?'
    preds[pred]=preds.get(pred,0)+1
    res.setdefault(it['depth'],[]).append(pred==it['label'])
print(preds, {d: round(sum(v)/len(v),3) for d,v in sorted(res.items())}, sum(sum(v) for v in res.values())/n)

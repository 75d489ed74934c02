#!/usr/bin/env bash
# End-to-end CLI tests: exit codes and messages on bad input, a tiny
# train -> interrupt -> resume -> eval -> score -> generate cycle.
# Usage: cli_test.sh path/to/dynarch
set -u
BIN=$(readlink -f "${1:?usage: cli_test.sh path/to/dynarch}")  # absolute: some cases change directory
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/harness.sh"

tiny_corpus "$T/corpus.txt" 0
cat > "$T/model.json" <<'JSON'
{"arch_layout": ["T1m1"], "d_model": [32], "d_intermediate": [64],
 "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8},
 "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]}}
JSON
: > "$T/empty.txt"
TRAIN=(train --config "$T/model.json" --steps 6 --batch 2 --seq-len 32 --eval-every 3 --eval-windows 4 --threads 1 --no-progress)

expect_fail "no subcommand" "subcommand" "$BIN"
expect_fail "missing data file" "$T/nope.txt" "$BIN" "${TRAIN[@]}" --data "$T/nope.txt" --out "$T/r0"
expect_fail "empty data file" "empty" "$BIN" "${TRAIN[@]}" --data "$T/empty.txt" --out "$T/r0"
echo '{"arch_layout": ["T1"], "d_model": [32], "d_intermediate": [64], "colour": 1}' > "$T/bad1.json"
expect_fail "unknown config field" '"colour"' "$BIN" train --config "$T/bad1.json" --data "$T/corpus.txt" --out "$T/r0"
echo '{"arch_layout": ["m1"], "d_model": [30], "ssm_cfg": {"headdim": 8}}' > "$T/bad2.json"
expect_fail "expand*d not divisible by headdim" "headdim" "$BIN" train --config "$T/bad2.json" --data "$T/corpus.txt" --out "$T/r0"
echo '{"arch_layout": ["T1x"], "d_model": [32]}' > "$T/bad3.json"
expect_fail "layout grammar" "arch_layout" "$BIN" train --config "$T/bad3.json" --data "$T/corpus.txt" --out "$T/r0"
echo '{"arch_layout": ' > "$T/bad4.json"
expect_fail "config not JSON" "bad4.json" "$BIN" train --config "$T/bad4.json" --data "$T/corpus.txt" --out "$T/r0"
expect_fail "bad dtype" "--dtype" "$BIN" "${TRAIN[@]}" --data "$T/corpus.txt" --out "$T/r0" --dtype fp8
expect_ok "dtype auto resolves per CPU" "$BIN" train --config "$T/model.json" --steps 1 --batch 2 --seq-len 32 --threads 1 --no-progress --data "$T/corpus.txt" --out "$T/rauto" --dtype auto
grep -Eq '"dtype": ?"(fp32|bf16)"' "$T/rauto/checkpoint/train_options.json" && ok "auto is saved resolved" || bad "auto not resolved in train_options.json"

expect_ok "train, stopped at step 3" "$BIN" "${TRAIN[@]}" --data "$T/corpus.txt" --out "$T/run" --stop-at 3
expect_fail "refuses to overwrite a run" "--resume" "$BIN" "${TRAIN[@]}" --data "$T/corpus.txt" --out "$T/run"
expect_ok "resume to the end" "$BIN" train --resume "$T/run" --threads 1 --no-progress
n=$(grep -c '"loss"' "$T/run/metrics.jsonl")
[ "$n" = 6 ] && ok "metrics hold 6 training steps" || bad "metrics hold $n training steps, want 6"
expect_ok "eval" "$BIN" eval -m "$T/run" --file "$T/corpus.txt" --no-progress
grep -q "bpb" "$T/out" && ok "eval prints bpb" || bad "eval prints bpb"
head -c 500 "$T/corpus.txt" > "$T/small.txt"
expect_ok "score" "$BIN" score -m "$T/run" --file "$T/small.txt" -o "$T/nll.f32" --no-progress
[ "$(stat -c %s "$T/nll.f32")" = 2000 ] && ok "score writes 4 bytes per input byte" || bad "score output size"
expect_ok "generate" "$BIN" generate -m "$T/run" -p "the cat" -n 40 --seed 3 --top-k 5
grep -q "^the cat" "$T/out" && ok "generate echoes the prompt" || bad "generate output"
expect_fail "eval missing file" "$T/none.bin" "$BIN" eval -m "$T/run" --file "$T/none.bin"
expect_fail "eval missing model" "does not exist" "$BIN" eval -m "$T/nomodel" --file "$T/corpus.txt"
cp -r "$T/run/checkpoint" "$T/broken"
head -c 100 "$T/run/checkpoint/model.safetensors" > "$T/broken/model.safetensors"
expect_fail "truncated weights" "model.safetensors" "$BIN" generate -m "$T/broken" -p x -n 5
# H-Net: training with a ratio target, official-checkpoint conversion, chunk views
SCRIPTS=$(cd "$(dirname "$0")/../scripts" && pwd)
cat > "$T/hnet.json" <<'JSON'
{"arch_layout": ["m1", ["T1m1", ["T1"], "m1T1"], "m1"], "d_model": [32, 32, 48], "d_intermediate": [0, 64, 128],
 "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 8, "headdim": 16},
 "attn_cfg": {"num_heads": [2, 2, 4], "rotary_emb_dim": [8, 8, 8], "window_size": [-1, 7, -1]}}
JSON
HTRAIN=(train --config "$T/hnet.json" --data "$T/corpus.txt" --steps 4 --batch 2 --seq-len 48 --eval-every 2 --eval-windows 2 --threads 1 --no-progress)
expect_fail "ratio target <= 1" "ratio-targets" "$BIN" "${HTRAIN[@]}" --out "$T/h0" --ratio-targets 1,3
expect_fail "ratio targets per stage" "2 chunking stage" "$BIN" "${HTRAIN[@]}" --out "$T/h0" --ratio-targets 3
expect_ok "train a 2-stage H-Net" "$BIN" "${HTRAIN[@]}" --out "$T/h1" --ratio-targets 3,2
grep -q '"stage1_bpc"' "$T/h1/metrics.jsonl" && ok "metrics hold per-stage bytes per chunk" || bad "no stage1_bpc in metrics"
# Packed and padded inner stages give the same bpb (windows of 40 over 1000 bytes: rows chunk unequally).
head -c 1000 "$T/corpus.txt" > "$T/k.txt"
"$BIN" eval -m "$T/h1" --file "$T/k.txt" --seq-len 40 --batch 4 --packed 1 --no-progress > "$T/ev_pk1.txt" 2>/dev/null
"$BIN" eval -m "$T/h1" --file "$T/k.txt" --seq-len 40 --batch 4 --packed 0 --no-progress > "$T/ev_pk0.txt" 2>/dev/null
pk1=$(grep -o '[0-9.]* bpb' "$T/ev_pk1.txt" | cut -d' ' -f1); pk0=$(grep -o '[0-9.]* bpb' "$T/ev_pk0.txt" | cut -d' ' -f1)
[ -n "$pk1" ] && [ -n "$pk0" ] && awk -v a="$pk1" -v b="$pk0" 'BEGIN { d = a - b; exit !(d <= 1e-4 && d >= -1e-4) }' \
  && ok "eval --packed 1 and 0 give the same bpb ($pk1, $pk0)" \
  || bad "eval --packed: $(cat "$T/ev_pk1.txt") vs $(cat "$T/ev_pk0.txt")"
expect_fail "eval --packed takes 1 or 0" "--packed" "$BIN" eval -m "$T/h1" --file "$T/k.txt" --packed maybe
expect_ok "chunks view" "$BIN" chunks -m "$T/h1" --text "the cat sat on the mat" --html "$T/c.html"
grep -q "Stage 1" "$T/c.html" && grep -q "stage 0" "$T/out" && ok "chunk view has both stages" || bad "chunk view content"
expect_fail "chunks of an isotropic model" "isotropic" "$BIN" chunks -m "$T/run" --text "abc"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  expect_ok "write a synthetic official checkpoint" /usr/bin/python3 "$SCRIPTS/convert_hnet.py" --write-synthetic "$T/hnet.json" "$T/official.pt"
  expect_ok "convert it" /usr/bin/python3 "$SCRIPTS/convert_hnet.py" "$T/official.pt" "$T/hnet.json" "$T/conv"
  expect_ok "converted weights load 1:1 and generate" "$BIN" generate -m "$T/conv" -p "the" -n 16 --seed 1
  grep -q "not verified" "$T/err" && bad "the converter's manifest (Python zlib.crc32) was not used" || ok "converted weights verified against their manifest"
  expect_ok "batch generation (4 samples)" "$BIN" generate -m "$T/conv" -p "the" -n 16 --samples 4
  [ "$(grep -c "^--- sample" "$T/out")" = 4 ] && ok "4 samples printed" || bad "sample count"
  cp "$T/hnet.json" "$T/hnet_wide.json"; sed -i 's/\[32, 32, 48\]/[32, 48, 48]/' "$T/hnet_wide.json"
  expect_fail "converter refuses a mismatched config" "does not match" /usr/bin/python3 "$SCRIPTS/convert_hnet.py" "$T/official.pt" "$T/hnet_wide.json" "$T/conv2"
else
  bad "python3-torch missing: run scripts/setup.sh"
fi
# HC/mHC: a multi-stream model trains, logs its gains and reports its stability
cat > "$T/mhc.json" <<'JSON'
{"arch_layout": ["T1m1"], "d_model": [32], "d_intermediate": [64],
 "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8},
 "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]}, "residual": {"type": "mhc", "n": 4}}
JSON
sed 's/"n": 4/"n": 0/' "$T/mhc.json" > "$T/mhc_bad.json"
expect_fail "residual n < 1" "residual.n" "$BIN" train --config "$T/mhc_bad.json" --data "$T/corpus.txt" --out "$T/m0"
sed 's/"n": 4/"n": 4, "init": "magic"/' "$T/mhc.json" > "$T/mhc_bad2.json"
expect_fail "unknown mHC preset" "unknown preset" "$BIN" train --config "$T/mhc_bad2.json" --data "$T/corpus.txt" --out "$T/m0"
expect_ok "train an mHC model" "$BIN" train --config "$T/mhc.json" --data "$T/corpus.txt" --out "$T/mrun" --steps 4 \
  --batch 2 --seq-len 32 --eval-every 2 --eval-windows 2 --threads 1 --no-progress --log-gains-every 2
grep -q '"comp_fwd"' "$T/mrun/metrics.jsonl" && ok "metrics hold stream-mixing gains" || bad "no gains in metrics"
expect_ok "stability" "$BIN" stability -m "$T/mrun" --file "$T/corpus.txt" --windows 3 --seq-len 24 --json "$T/st.json" --svg "$T/st.svg"
grep -q '"composite_forward"' "$T/st.json" && grep -q "<svg" "$T/st.svg" && grep -q "backbone.main_network" "$T/out" \
  && ok "stability writes JSON, SVG and a table" || bad "stability outputs"
expect_ok "generate with mHC" "$BIN" generate -m "$T/mrun" -p "the" -n 12 --seed 2
expect_ok "stability of a plain model" "$BIN" stability -m "$T/run" --file "$T/corpus.txt" --json "$T/st0.json"
grep -q "plain residual" "$T/out" && ok "plain model: all gains 1" || bad "plain model message"
expect_fail "stability needs a file" "--file" "$BIN" stability -m "$T/mrun"
expect_fail "stability of a missing file" "$T/none.txt" "$BIN" stability -m "$T/mrun" --file "$T/none.txt"
# H-Model: training with objectives, routes exports and comparison, composition from the isotropic run
cat > "$T/hm.json" <<'JSON'
{"arch_layout": ["T1m1f1"], "d_model": [32], "d_intermediate": [64],
 "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8},
 "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]},
 "hmodel": {"T": 3, "routing": {"topk": 2}, "loss": {"lambda_self": 0.01, "lambda_depth": 0.01}}}
JSON
MTRAIN=(train --data "$T/corpus.txt" --steps 3 --batch 2 --seq-len 32 --eval-every 3 --eval-windows 2 --threads 1 --no-progress)
expect_ok "train an H-Model LM" "$BIN" "${MTRAIN[@]}" --config "$T/hm.json" --out "$T/hm"
expect_ok "generate with an H-Model (T x L decode slots)" "$BIN" generate -m "$T/hm" -p "the" -n 12 --seed 2
grep -q '"hmodel_self"' "$T/hm/metrics.jsonl" && grep -q '"hmodel_depth"' "$T/hm/metrics.jsonl" && ok "metrics hold the H-Model objectives" || bad "no hmodel_* terms in metrics"
expect_ok "routes of a text" "$BIN" routes -m "$T/hm" --text "the cat sat" --json "$T/r.json" --dot "$T/r.dot" --svg "$T/r.svg"
grep -q "expected depth" "$T/out" && grep -q '"steps"' "$T/r.json" && grep -q "digraph trellis" "$T/r.dot" && grep -q "<svg" "$T/r.svg" && ok "routes prints the summary and writes JSON, DOT, SVG" || bad "routes exports"
expect_ok "routes default outputs" "$BIN" routes -m "$T/hm" --file "$T/small.txt" --max-bytes 64
[ -f "$T/hm/routes.json" ] && [ -f "$T/hm/routes.svg" ] && ok "routes writes RUN/routes.* by default" || bad "routes default files"
printf 'the cat sat\nthe dog ran\n' > "$T/setA.txt"; printf '{"text": "int x = 0;"}\n{"theory": "Anne is big.", "question": "Anne is big?"}\n' > "$T/setB.jsonl"
expect_ok "routes --compare" "$BIN" routes -m "$T/hm" --compare "$T/setA.txt" "$T/setB.jsonl" --json "$T/cmp.json"
grep -q "JS divergence" "$T/out" && grep -q '"weighted"' "$T/cmp.json" && ok "routes --compare reports JS" || bad "routes --compare output"
expect_fail "routes of an isotropic model" "no H-Model" "$BIN" routes -m "$T/run" --text "abc"
expect_fail "routes without input" "exactly one of --text or --file" "$BIN" routes -m "$T/hm"
printf '\n\n' > "$T/blank.txt"
expect_fail "routes --compare of an empty set" "holds no inputs" "$BIN" routes -m "$T/hm" --compare "$T/setA.txt" "$T/blank.txt"
sed 's/"T": 3/"T": 0/' "$T/hm.json" > "$T/hm_bad.json"
expect_fail "hmodel.T < 1" "hmodel.T" "$BIN" "${MTRAIN[@]}" --config "$T/hm_bad.json" --out "$T/hm0"
sed 's/"topk": 2/"granularity": "per_sequence"/' "$T/hm.json" > "$T/hm_seq.json"
expect_fail "per_sequence routing for an LM" "per_sequence" "$BIN" "${MTRAIN[@]}" --config "$T/hm_seq.json" --out "$T/hm1"
cat > "$T/hm_comp.json" <<JSON
{"arch_layout": ["m1T1f1"], "d_model": [32], "d_intermediate": [64],
 "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8},
 "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]},
 "hmodel": {"T": 3, "head": {"init": "chain"},
            "nodes": [{"at": [1, 2], "from": "$T/run", "layers": [1, 0], "freeze": true}]}}
JSON
expect_ok "compose an H-Model from a trained model's layers and train the rest" "$BIN" "${MTRAIN[@]}" --config "$T/hm_comp.json" --out "$T/hm2"
expect_ok "composed H-Model: stop at step 1" "$BIN" "${MTRAIN[@]}" --config "$T/hm_comp.json" --out "$T/hm2b" --stop-at 1
expect_ok "composed H-Model: resume (frozen nodes are not in the optimizer state)" "$BIN" train --resume "$T/hm2b" --threads 1 --no-progress
[ "$(grep '"loss"' "$T/hm2/metrics.jsonl" | tail -1 | sed 's/.*"loss":\([^,]*\).*/\1/')" = "$(grep '"loss"' "$T/hm2b/metrics.jsonl" | tail -1 | sed 's/.*"loss":\([^,]*\).*/\1/')" ] && ok "resumed H-Model run matches the straight run" || bad "resumed H-Model loss differs"
grep -q '"source_config"' "$T/hm2/checkpoint/config.json" && ok "the composed config embeds its source config" || bad "no source_config in the saved config"
sed 's/"layers": \[1, 0\]/"layers": [0, 1]/' "$T/hm_comp.json" > "$T/hm_comp_bad.json"
expect_fail "composition with mismatched layer types" "source layer 0" "$BIN" "${MTRAIN[@]}" --config "$T/hm_comp_bad.json" --out "$T/hm3"

# Reasoning dataset and a byte classifier on it
expect_fail "reasoning: bad depth" "--max-depth" "$BIN" reasoning --out "$T/rs" --max-depth 9
expect_fail "reasoning: bad size" "--train-per-depth" "$BIN" reasoning --out "$T/rs" --train-per-depth 0
expect_ok "reasoning dataset" "$BIN" reasoning --out "$T/rs" --train-per-depth 9 --test-per-depth 3 --max-depth 2 --seed 5
[ "$(wc -l < "$T/rs/train.jsonl")" = 27 ] && [ "$(wc -l < "$T/rs/test.jsonl")" = 9 ] && grep -q '"test_per_depth": 3' "$T/rs/manifest.json" \
  && ok "reasoning writes 27 + 9 items and a manifest" || bad "reasoning output"
"$BIN" reasoning --out "$T/rs2" --train-per-depth 9 --test-per-depth 3 --max-depth 2 --seed 5 >/dev/null
cmp -s "$T/rs/train.jsonl" "$T/rs2/train.jsonl" && ok "same seed, same bytes" || bad "reasoning is not deterministic"
cat > "$T/cls.json" <<'JSON'
{"arch_layout": ["T1"], "d_model": [32], "d_intermediate": [64], "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]},
 "task": {"type": "classify", "num_classes": 3, "labels": ["True", "False", "Unknown"]}}
JSON
sed 's/"num_classes": 3/"num_classes": 1/' "$T/cls.json" > "$T/cls_bad1.json"
expect_fail "classifier: num_classes < 2" "task.num_classes" "$BIN" train --config "$T/cls_bad1.json" --data "$T/rs" --out "$T/c0"
sed 's/"num_classes": 3/"num_classes": 2/' "$T/cls.json" > "$T/cls_bad2.json"
expect_fail "classifier: labels size mismatch" "task.labels" "$BIN" train --config "$T/cls_bad2.json" --data "$T/rs" --out "$T/c0"
sed 's/"classify"/"rank"/' "$T/cls.json" > "$T/cls_bad3.json"
expect_fail "classifier: unknown task type" "unknown task type" "$BIN" train --config "$T/cls_bad3.json" --data "$T/rs" --out "$T/c0"
CTRAIN=(train --config "$T/cls.json" --steps 6 --batch 4 --eval-every 3 --eval-windows 6 --threads 1 --no-progress)
expect_fail "classifier: input longer than --seq-len" "raise --seq-len" "$BIN" "${CTRAIN[@]}" --data "$T/rs" --out "$T/c0" --seq-len 100
expect_fail "classifier: data must be the JSONL directory" "train.jsonl" "$BIN" "${CTRAIN[@]}" --out "$T/c0" --data "$T/corpus.txt" --seq-len 1025
expect_ok "train a classifier, stopped at step 3" "$BIN" "${CTRAIN[@]}" --data "$T/rs" --out "$T/cls" --seq-len 1025 --stop-at 3
expect_ok "resume the classifier" "$BIN" train --resume "$T/cls" --threads 1 --no-progress
[ "$(grep -c '"acc"' "$T/cls/metrics.jsonl")" = 6 ] && [ "$(grep -c '"val_acc"' "$T/cls/metrics.jsonl")" = 2 ] \
  && ok "classifier metrics: 6 steps, 2 validations" || bad "classifier metrics"
expect_ok "eval a classifier" "$BIN" eval -m "$T/cls" --file "$T/rs/test.jsonl" --json "$T/acc.json" --no-progress
grep -q "accuracy" "$T/out" && grep -q '"by_depth"' "$T/out" && grep -q '"by_label"' "$T/acc.json" \
  && ok "eval prints accuracy by label and depth (table + JSON)" || bad "classifier eval output"
echo '{"text": "x", "label": "Maybe"}' > "$T/badlabel.jsonl"
expect_fail "eval: unknown label names file and line" "badlabel.jsonl:1" "$BIN" eval -m "$T/cls" --file "$T/badlabel.jsonl"
expect_fail "generate from a classifier" "classifier" "$BIN" generate -m "$T/cls" -p x -n 3

# Reliability (issue #18): metrics survive kill -9, damaged checkpoints are named,
# options and output paths are checked before any work, one summary line at the end.
KTRAIN=(train --config "$T/model.json" --data "$T/corpus.txt" --steps 12 --batch 2 --seq-len 32 --save-every 5
        --eval-every 20 --eval-windows 2 --threads 1 --no-progress)
expect_ok "uninterrupted reference run" "$BIN" "${KTRAIN[@]}" --out "$T/k0"
last=$(tail -n 1 "$T/out")
case "$last" in *"12/12 steps"*"loss "*"val bpb "*"bytes/s"*"$T/k0"*) ok "train --no-progress ends with a summary line";;
  *) bad "no summary line at the end of train's output: '$last'";; esac
killed() {  # killed NAME CMD...: the command must die of SIGKILL (exit 137)
  local name=$1; shift
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  [ "$rc" = 137 ] && ok "$name" || bad "$name (exit $rc, want 137)"
}
killed "kill -9 right after the checkpoint of step 5" "$BIN" "${KTRAIN[@]}" --out "$T/k1" --kill-at 5
killed "resume, kill -9 at step 7 (checkpoint still at 5)" "$BIN" train --resume "$T/k1" --threads 1 --no-progress --kill-at 7
printf '{"step": 8, "loss": 1.2' >> "$T/k1/metrics.jsonl"  # a line torn by the kill
killed "resume, kill -9 at step 11 (checkpoint at 10)" "$BIN" train --resume "$T/k1" --threads 1 --no-progress --kill-at 11
expect_ok "resume to the end" "$BIN" train --resume "$T/k1" --threads 1 --no-progress
cat > "$T/cmp_metrics.py" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
steps = [r["step"] for r in b if "loss" in r]
assert steps == list(range(1, 13)), steps
assert len(a) == len(b), (len(a), len(b))
for x, y in zip(a, b):
    assert (x["step"], x.get("loss"), x.get("val_bpb")) == (y["step"], y.get("loss"), y.get("val_bpb")), (x, y)
EOF
python3 "$T/cmp_metrics.py" "$T/k0/metrics.jsonl" "$T/k1/metrics.jsonl" >"$T/err" 2>&1 \
  && ok "after 3 kills metrics.jsonl holds every step once, in order, equal to the uninterrupted run" || bad "metrics after kills"
cp -r "$T/k0/checkpoint" "$T/dmg"
python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)-len(b)//4]^=16; open(p,'wb').write(b)" "$T/dmg/model.safetensors"
expect_fail "a flipped byte in the weights is named" "model.safetensors is damaged" "$BIN" eval -m "$T/dmg" --file "$T/small.txt"
cp -r "$T/k0/checkpoint" "$T/nan" && rm "$T/nan/manifest.json"  # edited by hand: loads unverified
cat > "$T/nan_weights.py" <<'EOF'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
start = 8 + n + json.loads(b[8:8 + n])["lm_head.weight"]["data_offsets"][0]
b[start:start + 4] = struct.pack("<f", float("nan"))
open(sys.argv[1], "wb").write(b)
EOF
python3 "$T/nan_weights.py" "$T/nan/model.safetensors"
expect_fail "eval of NaN weights fails" "not finite" "$BIN" eval -m "$T/nan" --file "$T/small.txt"
grep -q "no manifest.json" "$T/err" && ok "a checkpoint without a manifest loads with a warning" || bad "no manifest warning"
expect_fail "score of NaN weights fails" "not finite" "$BIN" score -m "$T/nan" --file "$T/small.txt" -o "$T/nan.f32"
[ ! -e "$T/nan.f32" ] && ok "score writes nothing when it fails" || bad "score wrote NaN output"
expect_fail "--lr inf is rejected before training" "--lr" "$BIN" "${TRAIN[@]}" --data "$T/corpus.txt" --out "$T/r0" --lr inf
expect_fail "score checks its output path first" "$T/nodir/nll.f32" "$BIN" score -m "$T/nomodel" --file "$T/small.txt" -o "$T/nodir/nll.f32"
expect_fail "eval checks its --json path first" "$T/nodir/acc.json" "$BIN" eval -m "$T/nomodel" --file "$T/small.txt" --json "$T/nodir/acc.json"
if [ "$(id -u)" != 0 ]; then  # root writes into read-only directories anyway
  mkdir -p "$T/ro" && chmod 555 "$T/ro"
  expect_fail "score into a read-only directory" "$T/ro/nll.f32" "$BIN" score -m "$T/run" --file "$T/small.txt" -o "$T/ro/nll.f32"
fi
mkdir -p "$T/cwd" && cp "$T/corpus.txt" "$T/model.json" "$T/cwd/"
(cd "$T/cwd" && "$BIN" train --config model.json --data corpus.txt --out rel --steps 4 --batch 2 --seq-len 32 \
  --eval-every 2 --eval-windows 2 --threads 1 --no-progress --stop-at 2 >/dev/null 2>&1)
expect_ok "resume from another working directory" bash -c "cd / && '$BIN' train --resume '$T/cwd/rel' --threads 1 --no-progress"
expect_ok "info prints a readable summary" "$BIN" info --config "$T/model.json"
grep -q "parameters" "$T/out" && ! grep -q '^{' "$T/out" && ok "info: text by default" || bad "info text output"
expect_ok "info --json" "$BIN" info --config "$T/model.json" --json
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["params"] > 0' "$T/out" && ok "info --json prints JSON" || bad "info --json output"
# --device: cpu gives exactly the default's results; bad values and CUDA without CUDA fail by name
expect_ok "score --device cpu" "$BIN" score -m "$T/run" --file "$T/small.txt" -o "$T/nll_cpu.f32" --device cpu --no-progress
cmp -s "$T/nll.f32" "$T/nll_cpu.f32" && ok "score --device cpu == default, bit for bit" || bad "score --device cpu differs"
"$BIN" eval -m "$T/run" --file "$T/small.txt" --no-progress > "$T/ev_default.txt" 2>/dev/null
expect_ok "eval --device cpu" "$BIN" eval -m "$T/run" --file "$T/small.txt" --device cpu --no-progress
cmp -s "$T/out" "$T/ev_default.txt" && ok "eval --device cpu == default" || bad "eval --device cpu differs"
"$BIN" generate -m "$T/run" -p "the cat" -n 40 --seed 3 --top-k 5 > "$T/gen_default.txt" 2>/dev/null
expect_ok "generate --device cpu" "$BIN" generate -m "$T/run" -p "the cat" -n 40 --seed 3 --top-k 5 --device cpu
cmp -s "$T/out" "$T/gen_default.txt" && ok "generate --device cpu == default" || bad "generate --device cpu differs"
expect_ok "train --device cpu" "$BIN" "${TRAIN[@]}" --data "$T/corpus.txt" --out "$T/rdev" --device cpu
cmp -s "$T/run/checkpoint/model.safetensors" "$T/rdev/checkpoint/model.safetensors" \
  && ok "train --device cpu == default (interrupted + resumed), bit for bit" || bad "train --device cpu weights differ"
grep -Eq '"device": ?"cpu"' "$T/rdev/checkpoint/train_options.json" && ok "train_options.json records the device" || bad "no device in train_options.json"
grep -Eq '"device": ?"auto"' "$T/run/checkpoint/train_options.json" && ok "the default device is saved as auto" || bad "default device not auto"
expect_fail "--device gpu" "--device 'gpu' is not a device: use cpu, cuda, cuda:N or auto" "$BIN" score -m "$T/run" --file "$T/small.txt" -o "$T/x.f32" --device gpu
expect_fail "--device cuda:x" "--device 'cuda:x': the device index must be a whole number" "$BIN" generate -m "$T/run" -p a -n 2 --device cuda:x
expect_fail "train --device bad, before any work" "--device 'tpu'" "$BIN" "${TRAIN[@]}" --data "$T/corpus.txt" --out "$T/rbad" --device tpu
[ ! -e "$T/rbad" ] && ok "a bad --device leaves no run directory" || bad "a bad --device created $T/rbad"
expect_fail "resume --device bad" "--device 'cuda:abc'" "$BIN" train --resume "$T/run" --device cuda:abc
# bench: --dtype, decode rows, bytes from a file (the issue's decode rows), and its bad input.
"$BIN" bench --config "$T/model.json" --batch 2 --seq-len 32 --steps 1 --dtype bf16 --decode-bytes 8 --decode-batch 3 \
  --data "$T/small.txt" --threads 1 > "$T/bench.json" 2>"$T/err" && ok "bench --dtype bf16 --decode-batch 3 --data" || bad "bench with decode options failed: $(cat "$T/err")"
grep -q '"decode_batch":3' "$T/bench.json" && grep -q '"decode_bytes_per_s_bf16"' "$T/bench.json" &&
  ! grep -q 'train_bytes_per_s_fp32' "$T/bench.json" && ok "bench JSON: bf16 only, decode batch recorded" || bad "bench JSON: $(cat "$T/bench.json")"
expect_fail "bench --data missing" "--data: cannot open '$T/none.txt'" "$BIN" bench --steps 1 --data "$T/none.txt"
expect_fail "bench --decode-batch 0" "--decode-batch must be >= 1, got 0" "$BIN" bench --steps 1 --decode-batch 0
expect_fail "bench --dtype fp16" "--dtype: fp16 not in {fp32,bf16,both}" "$BIN" bench --steps 1 --dtype fp16
if grep -q "DYNARCH_CUDA:BOOL=ON" "$(dirname "$BIN")/CMakeCache.txt" 2>/dev/null; then
  ok "CUDA build: the no-CUDA messages are not checked here"
else
  NOCUDA="this build has no CUDA; configure with -DDYNARCH_CUDA=ON"
  expect_fail "score --device cuda without CUDA" "--device 'cuda': $NOCUDA" "$BIN" score -m "$T/run" --file "$T/small.txt" -o "$T/x.f32" --device cuda
  expect_fail "eval --device cuda:0 without CUDA" "--device 'cuda:0': $NOCUDA" "$BIN" eval -m "$T/run" --file "$T/small.txt" --device cuda:0
  expect_fail "train --device cuda without CUDA" "$NOCUDA" "$BIN" "${TRAIN[@]}" --data "$T/corpus.txt" --out "$T/rcuda" --device cuda
  expect_fail "chunks --device cuda without CUDA" "$NOCUDA" "$BIN" chunks -m "$T/h1" --text "the cat" --device cuda
  expect_fail "stability --device cuda without CUDA" "$NOCUDA" "$BIN" stability -m "$T/mrun" --file "$T/small.txt" --device cuda
  expect_fail "routes --device cuda without CUDA" "$NOCUDA" "$BIN" routes -m "$T/hm" --text "the" --device cuda
  expect_fail "bench --device cuda without CUDA" "$NOCUDA" "$BIN" bench --steps 1 --device cuda
  # A run saved with "device": "cuda" (as on a GPU machine), stopped half-way.
  "$BIN" train --config "$T/model.json" --data "$T/corpus.txt" --out "$T/rgpu" --steps 4 --batch 2 --seq-len 32 \
    --eval-every 2 --eval-windows 2 --threads 1 --no-progress --stop-at 2 >/dev/null 2>&1
  sed -i 's/"device": *"auto"/"device": "cuda"/' "$T/rgpu/checkpoint/train_options.json"
  rm -f "$T/rgpu/checkpoint/manifest.json"  # edited on purpose
  expect_fail "resume of a CUDA run here names the field and the way out" "train_options.json: device 'cuda': $NOCUDA" "$BIN" train --resume "$T/rgpu" --threads 1 --no-progress
  grep -qF -- "resume with --device cpu" "$T/err" && ok "the message says --device cpu" || bad "no --device cpu hint"
  expect_ok "resume a CUDA run on the CPU with --device cpu" "$BIN" train --resume "$T/rgpu" --device cpu --threads 1 --no-progress
  [ "$(grep -c '"loss"' "$T/rgpu/metrics.jsonl")" = 4 ] && ok "it ran to the end" || bad "resumed run did not finish"
  grep -Eq '"device": ?"cpu"' "$T/rgpu/checkpoint/train_options.json" && ok "the resumed run records --device cpu" || bad "resumed run device"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

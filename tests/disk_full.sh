#!/usr/bin/env bash
# Disk full during a checkpoint save: training with --save-every into a small
# tmpfs that holds one checkpoint but not a second one beside it. The save must
# fail with exit != 0 and an error naming the path, the previous checkpoint must
# survive byte for byte (compared with a run stopped at that step) and load, and
# once there is room again the run resumes to the end.
# Needs root (mount); exits 77 (ctest: skipped) with a message otherwise.
#   tests/disk_full.sh path/to/dynarch
set -u
BIN=${1:?usage: disk_full.sh path/to/dynarch}
if [ "$(id -u)" != 0 ]; then echo "disk_full: skipped (needs root to mount a tmpfs)"; exit 77; fi
T=$(mktemp -d)
MNT="$T/mnt"
mkdir -p "$MNT"
cleanup() { umount "$MNT" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
source "$(dirname "$0")/harness.sh"

tiny_corpus "$T/corpus.txt" 2
cat > "$T/model.json" <<'JSON'
{"arch_layout": ["T1m1"], "d_model": [32], "d_intermediate": [64],
 "ssm_cfg": {"d_state": 8, "chunk_size": 8, "headdim": 8},
 "attn_cfg": {"num_heads": [2], "rotary_emb_dim": [8]}}
JSON
TRAIN=(train --config "$T/model.json" --data "$T/corpus.txt" --steps 8 --batch 2 --seq-len 32 --save-every 2
       --eval-every 4 --eval-windows 2 --threads 1 --no-progress)

# The reference: the same run stopped (with its checkpoint) at step 2, on a normal disk.
"$BIN" "${TRAIN[@]}" --out "$T/ref" --stop-at 2 >/dev/null 2>&1 || { echo "FAIL - reference run"; exit 1; }
ckpt=$(du -sb "$T/ref/checkpoint" | cut -f1)
# Room for one checkpoint, the metrics and a third of a second checkpoint.
size=$(( (ckpt * 4 / 3 + 65536) / 4096 * 4096 ))
if ! mount -t tmpfs -o size=$size tmpfs "$MNT" 2>"$T/mount.err"; then
  echo "disk_full: skipped (cannot mount a tmpfs here: $(cat "$T/mount.err"))"; exit 77
fi
echo "checkpoint $ckpt bytes, tmpfs $size bytes"

RUN="$MNT/run"
if "$BIN" "${TRAIN[@]}" --out "$RUN" >"$T/out" 2>"$T/err"; then
  bad "training into a full disk exited 0"
else
  ok "training into a full disk fails (exit $?)"
fi
echo "    stderr: $(head -c 400 "$T/err")"
grep -q "No space left on device" "$T/err" && ok "the error says the disk is full" || bad "no ENOSPC in: $(cat "$T/err")"
grep -qF "$RUN/checkpoint" "$T/err" && ok "the error names the path" || bad "the error does not name $RUN/checkpoint…: $(cat "$T/err")"
python3 "$(dirname "$0")/same_trainer.py" "$T/ref/checkpoint/trainer.safetensors" "$RUN/checkpoint/trainer.safetensors" &&
  ok "step-2 checkpoint trainer.safetensors intact" || bad "checkpoint/trainer.safetensors differs from the reference"
for f in model.safetensors config.json; do
  cmp -s "$T/ref/checkpoint/$f" "$RUN/checkpoint/$f" && ok "step-2 checkpoint $f intact" || bad "checkpoint/$f differs from the reference"
done
"$BIN" eval -m "$RUN" --file "$T/corpus.txt" --seq-len 32 --no-progress >"$T/out" 2>"$T/err" &&
  grep -q bpb "$T/out" && ok "the surviving checkpoint loads and evaluates" || bad "eval of the surviving checkpoint: $(cat "$T/err")"

# Room again: the run resumes from the surviving checkpoint and finishes.
mount -o remount,size=$((size * 8)) "$MNT"
"$BIN" train --resume "$RUN" --threads 1 --no-progress >"$T/out" 2>"$T/err" && ok "resume after freeing space" ||
  bad "resume after freeing space: $(cat "$T/err")"
"$BIN" "${TRAIN[@]}" --out "$T/full" >/dev/null 2>&1
cmp -s "$T/full/checkpoint/model.safetensors" "$RUN/checkpoint/model.safetensors" &&
  ok "the resumed run ends with the uninterrupted run's weights" || bad "resumed weights differ from an uninterrupted run"

echo "disk_full: $pass passed, $fail failed"
[ "$fail" = 0 ]

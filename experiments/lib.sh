# Shared by the experiment scripts (source it after `cd` to the repository root).

# run_done RUN STEPS: RUN has a final checkpoint and its metrics reached STEPS,
# so a re-run of the script skips it (scripts restart unfinished runs).
run_done() { [ -f "$1/checkpoint/model.safetensors" ] && grep -q "\"step\":$2," "$1/metrics.jsonl"; }

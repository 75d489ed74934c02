#!/usr/bin/env bash
# E1 (hmodel.md §13, issue #5 (a)): multi-hop rule reasoning, an H-Model whose pool is
# the L = 4 layers of the static T4 stack, run for T = 6 > L iterations with
# per-sequence routing (head init = chain, so step 0 starts from the stack's order),
# against that static stack: same parameters (+ the routing heads), data, steps and
# optimiser; accuracy by proof depth. Closed world (True / False), depths 0-3, one
# distractor fact and one (near-miss) distractor rule per theory (≈ 150 bytes: the
# full-size theories stayed at chance within a 2-core budget, see the report),
# classification from the last byte (task.pool = last: the causal models' only
# position that has read the question). Writes docs/experiments/hmodel_reasoning.{md,json}.
# Usage: experiments/hmodel_reasoning.sh   (env as experiments/reasoning_baseline.sh;
#        defaults here: STEPS 1000, BATCH 16, LR 2e-3, TRAIN_PER_DEPTH 4000, TEST_PER_DEPTH 250,
#        DISTRACTOR_FACTS 1, DISTRACTOR_RULES 1)
set -euo pipefail
cd "$(dirname "$0")/.."
export STEPS=${STEPS:-1000} BATCH=${BATCH:-16} LR=${LR:-2e-3}
export TRAIN_PER_DEPTH=${TRAIN_PER_DEPTH:-4000} TEST_PER_DEPTH=${TEST_PER_DEPTH:-250}
export MAX_DEPTH=${MAX_DEPTH:-3} CLOSED_WORLD=${CLOSED_WORLD:-1}
export DISTRACTOR_FACTS=${DISTRACTOR_FACTS:-1} DISTRACTOR_RULES=${DISTRACTOR_RULES:-1}
export OUT=${OUT:-runs/exp_hm_reasoning} REPORT=hmodel_reasoning
export MODELS_SPEC=${MODELS_SPEC:-"static_T4 experiments/configs/reasoning_t4_last.json;hmodel_T6 experiments/configs/reasoning_hm_t6.json"}
exec bash experiments/reasoning_baseline.sh

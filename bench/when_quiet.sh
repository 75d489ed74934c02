#!/usr/bin/env bash
# Run a command once the machine is quiet: waits until the 1-minute load
# average is below a threshold (other developers build and train on the same
# 2 cores; timings under load are meaningless), then runs it and prints the
# load before and after. Gives up after a deadline.
# usage: bench/when_quiet.sh [--below 1.0] [--wait-max SECONDS] -- command args...
set -euo pipefail
below=1.0
wait_max=3600
while [ $# -gt 0 ]; do
  case "$1" in
    --below) below="$2"; shift 2 ;;
    --wait-max) wait_max="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "no command given" >&2; exit 2; }
start=$(date +%s)
while :; do
  load=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$load" -v b="$below" 'BEGIN { exit !(l < b) }'; then break; fi
  if [ $(( $(date +%s) - start )) -ge "$wait_max" ]; then
    echo "when_quiet: load stayed >= $below for ${wait_max}s (now $load)" >&2
    exit 3
  fi
  sleep 10
done
echo "when_quiet: start $(date -Is) load $(cat /proc/loadavg)" >&2
"$@"
echo "when_quiet: end $(date -Is) load $(cat /proc/loadavg)" >&2

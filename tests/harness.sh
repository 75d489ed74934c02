# Shared by the shell test scripts (source it after setting T, the temp dir):
# pass/fail counters, checks that show the tail of $T/err on failure, and the
# tiny word corpus the end-to-end tests train on.
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   - $1"; }
bad() { fail=$((fail+1)); echo "FAIL - $1"; [ -f "$T/err" ] && sed 's/^/       /' "$T/err" | tail -6; }
# expect_fail NAME NEEDLE CMD...: non-zero exit and NEEDLE in stderr
expect_fail() {
  local name=$1 needle=$2; shift 2
  if "$@" >"$T/out" 2>"$T/err"; then bad "$name (exit 0)"; return; fi
  grep -qF -- "$needle" "$T/err" && ok "$name" || bad "$name (no '$needle' in stderr)"
}
expect_ok() {
  local name=$1; shift
  "$@" >"$T/out" 2>"$T/err" && ok "$name" || bad "$name (exit $?)"
}
# tiny_corpus FILE SEED: 6000 random words from a 12-word vocabulary
tiny_corpus() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import random, sys
random.seed(int(sys.argv[2]))
words = "the cat sat on a mat and dog ran far away home".split()
open(sys.argv[1], "w").write(" ".join(random.choice(words) for _ in range(6000)))
PY
}

#!/usr/bin/env bash
# The whole issue-2 benchmark in one go, from the repository root:  bash bench/run.sh
#   1. set up the peer venvs (skipped when present)
#   2. wait (up to BENCH_WAIT_S, default 300 s) for the 1-minute load average to fall to
#      BENCH_MAX_LOAD (default 1.0): other work on a 2-core machine halves the numbers
#   3. run every contender in its own process, BENCH_REPS (default 5) times, medians; the slow
#      ones at most 3 times, dlt's default dicts run once. Summary: stdout and
#      bench/out/<stamp>/summary.md
#   4. profile Headwater: cProfile of the records run; py-spy of the process executor
# About 6 minutes on 2 cores (plus any wait); dlt's default dicts run alone takes ~2 min and ~4.5 GB.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PY="$ROOT/.venv/bin/python"
PYSPY="$HERE/.venvs/tools/bin/py-spy"
OUT="$HERE/out/$(date -u +%Y%m%d-%H%M%S)"

[[ -x $PY ]] || { echo "run.sh: $PY is missing; run 'make demo' or 'make test' first" >&2; exit 1; }
bash "$HERE/setup_peers.sh"

source "$HERE/wait_quiet.sh"

mkdir -p "$OUT"
"$PY" "$HERE/run_all.py" --reps "${BENCH_REPS:-5}" --out "$OUT"

echo "run.sh: profiling (not part of the timings above)" >&2
"$PY" "$HERE/profile_headwater.py" records >"$OUT/profile_records_cprofile.txt"
for variant in records arrow; do
  [[ -x $PYSPY ]] || break
  raw="$OUT/pyspy_${variant}_process.raw"
  if "$PYSPY" record --subprocesses --rate 100 --format raw --output "$raw" -- \
    "$PY" "$HERE/bench_headwater.py" "$variant" process >/dev/null 2>&1; then
    "$PY" "$HERE/pyspy_summary.py" "$raw" 100 20 >"$OUT/profile_${variant}_process_pyspy.txt"
  else
    echo "run.sh: py-spy failed (it needs ptrace); skipped" >&2
  fi
done
ln -sfn "$OUT" "$HERE/out/latest"
echo "run.sh: results in $OUT (summary.md, raw.jsonl, logs/, profile_*.txt)" >&2

#!/usr/bin/env bash
# The whole issue-3 benchmark in one go, from the repository root:  bash bench/stream/run.sh
#   1. set up bench/.venvs/pathway (pathway==0.33.0) and py-spy (skipped when present)
#   2. wait (up to BENCH_WAIT_S, default 300 s) for the 1-minute load average to fall to
#      BENCH_MAX_LOAD (default 1.0): other work on a 2-core machine skews every number
#   3. run every contender (Headwater and Pathway: throughput with and without a primary key,
#      trickle latency with the 10 ms timer and with commit() per row) in its own fresh
#      process, BENCH_REPS (default 5) times, round-robin; medians to stdout and summary.md
#   4. profile Headwater (not part of the timings): py-spy of a throughput run, the staged
#      throughput and latency breakdowns
# About 8 minutes on 2 cores, plus any wait. Output: bench/out/stream-<UTC stamp>/
# (bench/out/stream-latest points at the newest).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=$(dirname "$HERE")
ROOT=$(dirname "$BENCH")
PY="$ROOT/.venv/bin/python"
PYSPY="$BENCH/.venvs/tools/bin/py-spy"
OUT="$BENCH/out/stream-$(date -u +%Y%m%d-%H%M%S)"

[[ -x $PY ]] || { echo "run.sh: $PY is missing; run 'make test' first" >&2; exit 1; }
bash "$HERE/setup.sh"

source "$BENCH/wait_quiet.sh"

mkdir -p "$OUT"
"$PY" "$HERE/run_all.py" --reps "${BENCH_REPS:-5}" --out "$OUT"

echo "run.sh: profiling Headwater (not part of the timings above)" >&2
quiet() { (cd "$HERE" && "$PY" -c 'import run_all; run_all.wait_quiet()'); }
for variant in pk nopk; do
  quiet
  "$PY" "$HERE/profile_throughput.py" "$variant" >"$OUT/profile_throughput_$variant.txt"
done
for mode in timer commit timer-capped state; do
  quiet
  "$PY" "$HERE/profile_latency.py" "$mode" >"$OUT/profile_latency_$mode.txt"
done
if [[ -x $PYSPY ]]; then
  quiet
  raw="$OUT/pyspy_throughput_pk.raw"
  if (cd "$HERE" && "$PYSPY" record --rate 200 --format raw --output "$raw" -- \
    "$PY" bench_throughput.py headwater pk >/dev/null 2>&1); then
    "$PY" "$BENCH/pyspy_summary.py" "$raw" 200 30 >"$OUT/profile_throughput_pk_pyspy.txt"
  else
    echo "run.sh: py-spy failed (it needs ptrace); skipped" >&2
  fi
fi
ln -sfn "$OUT" "$BENCH/out/stream-latest"
echo "run.sh: results in $OUT (summary.md, raw.jsonl, logs/, profile_*.txt)" >&2

#!/usr/bin/env bash
# The whole issue-5 benchmark in one go, from the repository root:  bash bench/tasks/run.sh
#   1. set up bench/.venvs/flytekit (flytekit[connector]==1.16.31) and py-spy (skipped when
#      present)
#   2. wait (up to BENCH_WAIT_S, default 300 s) for the 1-minute load average to fall to
#      BENCH_MAX_LOAD (default 1.0): other work on a 2-core machine skews every number
#   3. serve the trivial connector with Headwater and with flytekit (and, for reference,
#      Headwater on grpc.aio and the two bare-gRPC floors), each in a fresh process, BENCH_REPS
#      (default 5) times, alternating; drive each with 8 flyteidl clients; medians, ratios and
#      the target to stdout and summary.md
#   4. where the time goes (not part of the timings): each engine's handlers without gRPC
#      (handler_cost.py, with cProfile) and py-spy of each server under load
# (variant_server.py's experiments, run here until the changes they measured were made, can
# still be run by hand: run_all.py --only headwater hw_direct hw_hints hw_v1only.)
# About 12 minutes on 2 cores, plus any wait. Output: bench/out/tasks-<UTC stamp>/
# (bench/out/tasks-latest points at the newest).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=$(dirname "$HERE")
ROOT=$(dirname "$BENCH")
PY="$ROOT/.venv/bin/python"
FK="$BENCH/.venvs/flytekit/bin/python"
PYSPY="$BENCH/.venvs/tools/bin/py-spy"
OUT="$BENCH/out/tasks-$(date -u +%Y%m%d-%H%M%S)"

[[ -x $PY ]] || { echo "run.sh: $PY is missing; run 'make test' first" >&2; exit 1; }
bash "$HERE/setup.sh"

source "$BENCH/wait_quiet.sh"

mkdir -p "$OUT"
"$PY" "$HERE/run_all.py" --reps "${BENCH_REPS:-5}" --floors --out "$OUT"

echo "run.sh: where the time goes (not part of the timings above)" >&2
quiet() { (cd "$HERE" && "$PY" -c 'import run_all; run_all.wait_quiet()'); }
quiet
(cd "$HERE" && "$PY" handler_cost.py --profile) >"$OUT/handler_cost_headwater.txt"
quiet
(cd "$HERE" && "$FK" handler_cost.py --profile) >"$OUT/handler_cost_flytekit.txt"
if [[ -x $PYSPY ]]; then
  for engine in headwater flytekit; do
    if ! (cd "$HERE" && "$PY" profile_server.py "$engine" "$OUT/profile_$engine" >/dev/null); then
      echo "run.sh: py-spy of $engine failed (it needs ptrace); skipped" >&2
    fi
  done
fi
ln -sfn "$OUT" "$BENCH/out/tasks-latest"
echo "run.sh: results in $OUT (summary.md, raw.jsonl, logs/, handler_cost_*.txt," \
  "profile_*)" >&2

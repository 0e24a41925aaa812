#!/usr/bin/env bash
# Issue 8's benchmark, from the repository root:  bash bench/spark/run.sh
#   1. wait (up to BENCH_WAIT_S, default 300 s) for the 1-minute load average to fall to
#      BENCH_MAX_LOAD (default 1.0)
#   2. 8 partitions of a CPU-bound connector at 80k, 800k and 8M rows (BENCH_SIZES: rows per
#      partition), on the thread, process and Spark local[2] executors, BENCH_REPS (default 3)
#      runs each in fresh processes; medians to bench/out/spark-<stamp>/summary.md
# About 10 minutes on 2 cores. Needs Java 17+ and the project venv with the spark extra.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
PY="$ROOT/.venv/bin/python"
OUT="$ROOT/bench/out/spark-$(date -u +%Y%m%d-%H%M%S)"
[[ -x $PY ]] || { echo "run.sh: $PY is missing" >&2; exit 1; }
source "$ROOT/bench/wait_quiet.sh"
# shellcheck disable=SC2086  # BENCH_SIZES is a list of numbers
"$PY" "$HERE/run_all.py" --reps "${BENCH_REPS:-3}" --sizes ${BENCH_SIZES:-10000 100000 1000000} --out "$OUT"
echo "run.sh: results in $OUT (summary.md, raw.jsonl, machine.json, logs/)" >&2

#!/usr/bin/env bash
# The issue-6 load benchmark in one go, from the repository root:  bash bench/server/run.sh
#   1. wait (up to BENCH_WAIT_S, default 300 s) for the 1-minute load average to fall to
#      BENCH_MAX_LOAD (default 1.0): other work on a 2-core machine skews every number
#   2. start `headwater server` on a fresh temporary home with 20 partitions x 1,000 rows
#      landed, and the floor (a bare FastAPI/uvicorn constant); drive each with 8 signed
#      clients (2 processes x 4 threads): floor, /health, then the mix (records pages,
#      partition lists, run triggers), BENCH_REPS (default 3) times; medians to stdout
# About 1 minute on 2 cores, plus any wait. Output: bench/out/server-<UTC stamp>/
# (summary.md, raw.json, machine.json, server.log, floor.log; bench/out/server-latest).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=$(dirname "$HERE")
ROOT=$(dirname "$BENCH")
PY="$ROOT/.venv/bin/python"
OUT="$BENCH/out/server-$(date -u +%Y%m%d-%H%M%S)"

[[ -x $PY ]] || { echo "run.sh: $PY is missing; run 'make test' first" >&2; exit 1; }
source "$BENCH/wait_quiet.sh"
mkdir -p "$OUT"
"$PY" "$HERE/load.py" --clients "${BENCH_CLIENTS:-8}" --procs "${BENCH_PROCS:-2}" \
  --reps "${BENCH_REPS:-3}" --out "$OUT"
ln -sfn "$OUT" "$BENCH/out/server-latest"
echo "run.sh: results in $OUT" >&2

"""Trickle latency: from `next()` to the row being visible in the output CSV, one engine per run.

    .venv/bin/python bench/stream/bench_latency.py headwater timer     # or: commit
    bench/.venvs/pathway/bin/python bench/stream/bench_latency.py pathway timer

The subject sends one row every 10 ms on an absolute schedule (so send jitter does not add up),
putting its send time (`time.time()`) in the `name` column; the schema has `key` int as primary
key. `timer`: `autocommit_duration_ms=10`, the subject never commits. `commit`: no autocommit
(`None`), `commit()` after every `next()`. A separate process (poll.py) tails the CSV every
0.5 ms and records when each row first appears. After the last row the subject waits 0.5 s so
the last ones drain before the stream closes. The first 20 rows are a warm-up and excluded.
`BENCH_STREAM_TRICKLE_ROWS` (1000) and `BENCH_STREAM_INTERVAL_MS` (10) change the workload.
Prints one `RESULT {json}` line with the percentiles in milliseconds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import engines

HERE = Path(__file__).parent
ROWS = int(os.environ.get("BENCH_STREAM_TRICKLE_ROWS", "1000"))
INTERVAL_S = float(os.environ.get("BENCH_STREAM_INTERVAL_MS", "10")) / 1000
WARM_UP = 20
POLLER_READY_S = 10.0


def percentiles(latencies: dict[int, float]) -> dict[str, float | int]:
    """Milliseconds: nearest-rank percentiles over the rows after the warm-up (as the
    research scripts computed them)."""
    xs = sorted(v * 1000 for k, v in latencies.items() if k >= WARM_UP)
    if not xs:
        return {"n": 0}

    def at(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(p * len(xs)))], 2)

    return {
        "n": len(xs),
        "min": round(xs[0], 2),
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(xs[-1], 2),
        "mean": round(statistics.fmean(xs), 2),
    }


def start_poller(out: Path, work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """The poller, polling before the first row is sent."""
    result, ready = work / "poll.json", work / "poll.ready"
    poller = subprocess.Popen(
        [sys.executable, str(HERE / "poll.py"), str(out), str(result), str(ROWS), str(ready)]
    )
    deadline = time.monotonic() + POLLER_READY_S
    while not ready.exists():
        if poller.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the poller did not start")
        time.sleep(0.01)
    return poller, result


def main(engine: str, mode: str) -> None:
    if mode not in ("timer", "commit"):
        raise SystemExit(f"unknown mode {mode!r}; use timer or commit")
    api = engines.load(engine)
    commit_each = mode == "commit"

    class Trickle(api.ConnectorSubject):
        def run(self) -> None:
            due = time.perf_counter()
            for i in range(ROWS):
                due += INTERVAL_S
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                self.next(key=i, name=repr(time.time()), value=float(i))
                if commit_each:
                    self.commit()
            time.sleep(0.5)  # let the last rows drain before the stream closes

    work = engines.work_dir(f"{engine}_{mode}")
    out = work / "out.csv"
    table = api.read(
        engines.append_only(api, Trickle)(),
        schema=engines.rows_schema(api, primary_key=True),
        autocommit_duration_ms=None if commit_each else 10,
    )
    api.write_csv(table, out)
    poller, result = start_poller(out, work)
    started = time.perf_counter()
    api.run()
    run_s = time.perf_counter() - started
    peak = engines.peak_rss_mb()
    poller.wait(timeout=60)
    latencies = {int(k): v for k, v in json.loads(result.read_text()).items()}
    engines.cleanup(work)
    if len(latencies) != ROWS:
        raise SystemExit(f"the poller saw {len(latencies)} of {ROWS} rows")
    summary = {
        "name": f"{engine}_{mode}",
        "engine": engine,
        "version": api.version,
        "rows": ROWS,
        "interval_ms": INTERVAL_S * 1000,
        "autocommit_ms": None if commit_each else 10,
        "commit_each": commit_each,
        "run_s": round(run_s, 3),
        "peak_rss_mb": peak,
        "latency_ms": percentiles(latencies),
        "python": engines.python_version(),
    }
    print("RESULT " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])

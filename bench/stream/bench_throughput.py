"""Throughput: 1,000,000 rows pushed by a ConnectorSubject into a CSV sink, one engine per run.

    .venv/bin/python bench/stream/bench_throughput.py headwater pk     # or: nopk
    bench/.venvs/pathway/bin/python bench/stream/bench_throughput.py pathway pk

The subject calls `next(key=i, name=f"name_{i}", value=i * 0.5)` and `commit()` every 10,000
rows (`BENCH_STREAM_ROWS`, `BENCH_STREAM_COMMIT_EVERY` change them); the stream is read with
`autocommit_duration_ms=1500` (both engines' default) and written with the engine's CSV sink.
Timed: `run()`, from the call until every row is in the file and the sink is closed. Peak RSS
is taken right after it. Then the file is read back and checked (row count, sum of `key`, every
`diff` is +1), so a broken run cannot report a number. Prints one `RESULT {json}` line.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

import engines

ROWS = int(os.environ.get("BENCH_STREAM_ROWS", "1000000"))
COMMIT_EVERY = int(os.environ.get("BENCH_STREAM_COMMIT_EVERY", "10000"))


def check(path: Path, rows: int) -> int:
    """The CSV holds exactly rows 0..rows-1, each once, each an insertion. Returns its size."""
    count = key_sum = 0
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        key, diff = header.index("key"), header.index("diff")
        for row in reader:
            if row[diff] != "1":
                raise SystemExit(f"unexpected change {row} in {path}: every diff should be 1")
            count += 1
            key_sum += int(row[key])
    expected = rows * (rows - 1) // 2
    if count != rows or key_sum != expected:
        raise SystemExit(
            f"read back {count} rows (key sum {key_sum}); expected {rows} ({expected})"
        )
    return path.stat().st_size


def main(engine: str, keyed: str) -> None:
    if keyed not in ("pk", "nopk"):
        raise SystemExit(f"unknown variant {keyed!r}; use pk or nopk")
    started = time.perf_counter()
    api = engines.load(engine)
    import_s = time.perf_counter() - started
    produced: dict[str, float] = {}

    class Counting(api.ConnectorSubject):
        def run(self) -> None:
            next_row, commit = self.next, self.commit
            for i in range(ROWS):
                next_row(key=i, name=f"name_{i}", value=i * 0.5)
                if (i + 1) % COMMIT_EVERY == 0:
                    commit()
            commit()
            produced["done"] = time.perf_counter()

    subject = engines.append_only(api, Counting)()
    out = engines.work_dir(f"{engine}_{keyed}")
    table = api.read(
        subject, schema=engines.rows_schema(api, keyed == "pk"), autocommit_duration_ms=1500
    )
    api.write_csv(table, out / "out.csv")
    run_started = time.perf_counter()
    api.run()
    run_s = time.perf_counter() - run_started
    peak = engines.peak_rss_mb()
    checked = time.perf_counter()
    size = check(out / "out.csv", ROWS)
    engines.cleanup(out)
    check_s = time.perf_counter() - checked
    result = {
        "name": f"{engine}_{keyed}",
        "engine": engine,
        "version": api.version,
        "rows": ROWS,
        "commit_every": COMMIT_EVERY,
        "import_s": round(import_s, 3),
        "run_s": round(run_s, 3),
        "rows_per_s": round(ROWS / run_s),
        "producer_done_s": round(produced["done"] - run_started, 3),
        "peak_rss_mb": peak,
        "csv_mb": round(size / 1e6, 1),
        "check_s": round(check_s, 3),  # not part of any timing: run_all.py subtracts it
        "python": engines.python_version(),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])

"""Shared by every contender: the rows they write, the read-back check, the RESULT line.

Standard library only, so the peers' venvs import it too. Every contender builds its rows in
Python, inside its timed region, from these generators: the same 1,000,000 deterministic rows
(`id` int, `name` str, `value` float) over 8 partitions of 125,000.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PARTS = int(os.environ.get("BENCH_PARTS", "8"))
ROWS_PER_PART = int(os.environ.get("BENCH_ROWS_PER_PART", "125000"))
TOTAL_ROWS = PARTS * ROWS_PER_PART
WORK = Path(os.environ.get("BENCH_WORK", Path(__file__).parent / "out" / "work"))


def partition_records(part: int) -> Iterator[dict[str, Any]]:
    """One partition's rows as dicts: what a `read_records` connector yields."""
    start = part * ROWS_PER_PART
    for i in range(start, start + ROWS_PER_PART):
        yield {"id": i, "name": f"name_{i}", "value": i * 0.5}


def partition_columns(part: int) -> dict[str, list[Any]]:
    """The same rows as three Python lists: what an Arrow connector builds its table from."""
    ids = list(range(part * ROWS_PER_PART, (part + 1) * ROWS_PER_PART))
    return {"id": ids, "name": [f"name_{i}" for i in ids], "value": [i * 0.5 for i in ids]}


def all_records() -> Iterator[dict[str, Any]]:
    for part in range(PARTS):
        yield from partition_records(part)


def warm_up() -> None:
    """Import what pyarrow imports lazily, before any timer starts.

    pyarrow imports pandas (when installed) on its first `pa.table` or `from_pylist` call,
    ~0.3 s on this machine. That is a one-off import, not per-row work, and only the project
    venv has pandas: every contender calls this first so none of them pays it while timed.
    """
    with contextlib.suppress(ImportError):
        import pandas  # noqa: F401


def check(rows: int, id_sum: int) -> None:
    """Fail the run unless the rows read back from disk are exactly the rows generated."""
    expected = TOTAL_ROWS * (TOTAL_ROWS - 1) // 2
    if rows != TOTAL_ROWS or id_sum != expected:
        raise SystemExit(
            f"read back {rows} rows (id sum {id_sum}); expected {TOTAL_ROWS} ({expected})"
        )


def work_dir(prefix: str) -> Path:
    """A fresh folder on local disk for one run's output (removed by `cleanup`)."""
    WORK.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}_", dir=WORK))


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def peak_rss_mb() -> tuple[float, float]:
    """Peak RSS of this process, and of its largest waited-for child (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(child, 1)


class Timer:
    """Seconds since creation, with named marks for the phases of a run."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> float:
        self.marks[name] = round(time.perf_counter() - self.started, 3)
        return self.marks[name]


def report(
    name: str, seconds: float, peak: tuple[float, float], rows: int = TOTAL_ROWS, **extra: Any
) -> None:
    """Print the run's one RESULT line (JSON) for run_all.py to collect.

    `peak` is `peak_rss_mb()` taken right after the timed region, before the read-back check.
    """
    result = {
        "name": name,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": peak[0],
        "peak_rss_child_mb": peak[1],
        "python": sys.version.split()[0],
        **extra,
    }
    print("RESULT " + json.dumps(result), flush=True)

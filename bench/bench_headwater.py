"""Headwater, the real product: one refresh of a connector into a fresh HEADWATER_HOME.

    python bench/bench_headwater.py records thread    # connector_records.py, default settings
    python bench/bench_headwater.py arrow process     # connector_arrow.py, executor="process"
    python bench/bench_headwater.py arrow thread 2    # the thread executor, concurrency 2

The timed region is `Workspace.refresh(...)` alone: load the connector, lease, list, plan, read
every partition into Parquet (fsynced), commit each to the SQLite catalog. Opening the workspace
(creating the catalog) is timed separately. The rows are then read back through SQL.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Timer, check, cleanup, peak_rss_mb, report, warm_up, work_dir

import headwater
from headwater.component import ComponentSettings

HERE = Path(__file__).parent
PROCESS_WORKERS = 2  # one worker per core on the 2-core benchmark machine


def settings_for(executor: str, concurrency: int | None) -> ComponentSettings:
    if executor == "thread":
        return ComponentSettings().updated(concurrency=concurrency)  # default: 4 threads
    if executor == "process":
        return ComponentSettings(executor="process", concurrency=concurrency or PROCESS_WORKERS)
    raise SystemExit(f"unknown executor {executor!r}; use thread or process")


def main(variant: str, executor: str, concurrency: int | None) -> None:
    if variant not in ("records", "arrow"):
        raise SystemExit(f"unknown variant {variant!r}; use records or arrow")
    settings = settings_for(executor, concurrency)
    warm_up()
    home = work_dir(f"headwater_{variant}_{executor}")
    started = time.perf_counter()
    with headwater.Workspace(home=home) as ws:
        open_s = time.perf_counter() - started
        timer = Timer()
        result = ws.refresh(HERE / f"connector_{variant}.py", settings=settings)
        seconds = timer.mark("refresh_s")
        peak = peak_rss_mb()
        result.raise_for_status()
        component = result.component
        counted = ws.query(f"SELECT count(*) AS n, sum(id) AS s FROM {component}").to_pylist()[0]
        check(counted["n"], counted["s"])
    cleanup(home)
    suffix = f"_c{concurrency}" if concurrency else ""
    report(
        f"headwater_{variant}_{executor}{suffix}",
        seconds,
        peak,
        open_s=round(open_s, 3),
        executor=settings.executor,
        concurrency=settings.concurrency,
        parquet_bytes=result.bytes,
        headwater=headwater.__version__,
    )


if __name__ == "__main__":  # the process executor spawns workers that re-import this module
    args = sys.argv[1:] or ["records", "thread"]
    main(args[0], args[1], int(args[2]) if len(args) > 2 else None)

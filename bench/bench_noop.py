"""The no-op refresh: 10,000 unchanged partitions, refreshed again, against the listing alone.

    python bench/bench_noop.py

1. A child process does the initial refresh (timed and reported, not the target).
2. This fresh process times the listing alone: call the connector's `list_objects` and consume
   it in plain Python, as no engine would do it faster.
3. It then times a second `Workspace.refresh` of the same connector, where nothing changed.
The target is on (no-op refresh - listing): what Headwater adds on top of the listing.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
import time
from pathlib import Path

from common import cleanup, peak_rss_mb, report, warm_up, work_dir

import headwater

CONNECTOR = Path(__file__).parent / "connector_noop.py"


def refresh(home: Path) -> tuple[float, dict[str, int]]:
    with headwater.Workspace(home=home) as ws:
        started = time.perf_counter()
        result = ws.refresh(CONNECTOR).raise_for_status()
        return time.perf_counter() - started, result.counts


def initial(home: Path) -> None:
    """Run in a child process: the first refresh, which lands every partition."""
    seconds, counts = refresh(home)
    print(json.dumps({"seconds": seconds, "counts": counts, "peak_rss_mb": peak_rss_mb()[0]}))


def listing_seconds() -> float:
    list_objects = runpy.run_path(str(CONNECTOR))["list_objects"]
    started = time.perf_counter()
    count = sum(1 for _ in list_objects(None, None))
    seconds = time.perf_counter() - started
    assert count == 10_000, count
    return seconds


def main() -> None:
    warm_up()
    home = work_dir("headwater_noop")
    child = subprocess.run(
        [sys.executable, __file__, "initial", str(home)], check=True, capture_output=True, text=True
    )
    first = json.loads(child.stdout.strip().splitlines()[-1])
    listing = listing_seconds()
    noop, counts = refresh(home)
    peak = peak_rss_mb()
    if counts != {"added": 0, "changed": 0, "removed": 0, "unchanged": 10_000}:
        raise SystemExit(f"the second refresh was not a no-op: {counts}")
    with headwater.Workspace(home=home) as ws:
        partitions = len(ws.partitions("connector_noop"))
        rows = ws.query("SELECT count(*) AS n FROM connector_noop").to_pylist()[0]["n"]
    if partitions != 10_000 or rows != 10_000:
        raise SystemExit(f"read back {partitions} partitions and {rows} rows; expected 10,000")
    cleanup(home)
    report(
        "headwater_noop",
        noop,
        peak,
        rows=rows,
        partitions=partitions,
        listing_s=round(listing, 4),
        overhead_s=round(noop - listing, 3),
        initial_s=round(first["seconds"], 3),
        initial_peak_rss_mb=first["peak_rss_mb"],
        headwater=headwater.__version__,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["initial"]:
        initial(Path(sys.argv[2]))
    else:
        main()

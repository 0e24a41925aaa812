"""cProfile of one Headwater refresh, reads included: where the time of a run goes.

    python bench/profile_headwater.py records     # or: arrow
    python bench/profile_headwater.py records 30  # print the top 30 instead of 15

cProfile only sees the thread it runs in, and the thread executor reads partitions on pool
threads. So each partition's `land` call is profiled on its own thread (by wrapping the name
the executor calls; profiling only, Headwater is unchanged) and merged with the main thread's
profile. The refresh runs the thread executor with concurrency 1: with more threads, each
thread's wall-clock profile would also count the time it waits for the GIL, and summing them
would count the same second several times. Prints the top functions by cumulative and by own
(tottime) time; the main thread's wait for results shows as `acquire` of a lock.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import threading
import time
from pathlib import Path

from common import cleanup, warm_up, work_dir

import headwater
import headwater.engine.executors as executors
from headwater.component import ComponentSettings

HERE = Path(__file__).parent
_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()
_land = executors.land


def profiled_land(*args, **kwargs):
    profile = cProfile.Profile()
    try:
        return profile.runcall(_land, *args, **kwargs)
    finally:
        with _lock:
            _profiles.append(profile)


def main(variant: str, top: int) -> None:
    warm_up()
    home = work_dir(f"profile_{variant}")
    executors.land = profiled_land
    with headwater.Workspace(home=home) as ws:
        main_profile = cProfile.Profile()
        started = time.perf_counter()
        result = main_profile.runcall(
            ws.refresh, HERE / f"connector_{variant}.py", settings=ComponentSettings(concurrency=1)
        )
        seconds = time.perf_counter() - started
        result.raise_for_status()
    cleanup(home)
    stats = pstats.Stats(main_profile, stream=io.StringIO())
    for profile in _profiles:
        stats.add(profile)
    print(
        f"# cProfile: headwater {variant}, thread executor, concurrency 1, {result.rows:,} rows, "
        f"{len(_profiles)} partition reads on pool threads merged with the main thread; "
        f"refresh took {seconds:.2f} s under the profiler"
    )
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats.stream = out
        stats.sort_stats(order).print_stats(top)
        body = out.getvalue()
        print(f"\n## top {top} by {order}\n")
        print(body[body.index("   ncalls") :].rstrip())


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "records",
        int(sys.argv[2]) if len(sys.argv) > 2 else 15,
    )

"""One refresh of the CPU-bound connector, in this fresh process, on one executor.

    .venv/bin/python bench/spark/bench_spark.py thread|process|spark|spark-warm ROWS_PER_PART

Timed from the start of this script (imports included, so Spark's JVM start is paid as a
`headwater run --executor spark` pays it): `start` (the Spark session; 0 for the local
executors), `first` (the first partition committed, from the refresh's start), `refresh` (the
whole refresh: plan, read, write, commit). `spark-warm` times a second refresh in the same
process, after an untimed one of another component (80,000 rows): what a long-lived driver (the
server) pays once Spark and its Python workers are up; its `start` is 0 and `warm_up` is what
the session and that first refresh took. Peak memory is the whole process tree's (the JVM and
Spark's Python workers, or the process pool's workers), sampled every 0.1 s as PSS, so pages
shared by forked workers count once. CPU is the tree's, up to the refresh's end (`cpu`) and
during the refresh alone (`refresh_cpu`). The rows are read back and checked. Prints one RESULT
line (JSON).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

STARTED = time.perf_counter()
HERE = Path(__file__).parent


class TreeMemory:
    """Peak PSS of this process and all its descendants, sampled on a thread."""

    def __init__(self, every: float = 0.1) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(p) for p in _tree(os.getpid())))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak_kib / 1024, 1)


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds() -> float:
    """CPU seconds of this process tree so far: each live process's own and its waited-for
    children's (the JVM's, Spark's Python daemon with the workers it forked and reaped, the
    process pool's forkserver), taken before anything exits."""
    total = 0
    for pid in _tree(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


class FirstLanded:
    """The refresh's progress: when the first partition was committed."""

    def __init__(self) -> None:
        self.at: float | None = None

    def planned(self, plan: object) -> None:
        pass

    def landed(self, name: str, rows: int, size: int) -> None:
        if self.at is None:
            self.at = time.perf_counter()

    def failed(self, name: str, message: str) -> None:
        raise SystemExit(f"partition {name} failed: {message}")


def main() -> None:
    executor, rows_per_part = sys.argv[1], int(sys.argv[2])
    os.environ["BENCH_ROWS_PER_PART"] = str(rows_per_part)
    parts = int(os.environ.get("BENCH_PARTS", "8"))
    memory = TreeMemory()
    from headwater import Workspace

    home = Path(tempfile.mkdtemp(prefix=f"spark_bench_{executor}_"))
    start = warm_up = 0.0
    warm = executor == "spark-warm"  # a long-lived driver: session and workers already up
    executor = "spark" if warm else executor
    if executor == "spark":
        from headwater.settings import SparkSettings
        from headwater.spark import session

        began = time.perf_counter()
        session(SparkSettings(master="local[2]", conf={"spark.ui.enabled": "false"}))
        start = time.perf_counter() - began
        began = time.perf_counter()
    progress = FirstLanded()
    changes = {"executor": executor}
    if executor == "process":
        changes["concurrency"] = 2  # one worker per core
    try:
        with Workspace(home=home) as ws:
            if warm:  # untimed: another component's refresh plans and starts the workers
                os.environ["BENCH_ROWS_PER_PART"] = "10000"
                ws.refresh(HERE / "connector_cpu.py", component="warm", **changes)
                os.environ["BENCH_ROWS_PER_PART"] = str(rows_per_part)
                warm_up, start = start + time.perf_counter() - began, 0.0
            cpu_before, began = tree_cpu_seconds(), time.perf_counter()
            result = ws.refresh(HERE / "connector_cpu.py", progress=progress, **changes)
            refresh = time.perf_counter() - began
            cpu = tree_cpu_seconds()
            result.raise_for_status()
            peak = memory.stop()
            total = parts * rows_per_part
            [check] = ws.query("SELECT count(*) AS n, sum(id) AS s FROM connector_cpu").to_pylist()
            if (check["n"], check["s"]) != (total, total * (total - 1) // 2):
                raise SystemExit(f"read back {check}; expected {total} rows")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert progress.at is not None
    print(
        "RESULT "
        + json.dumps(
            {
                "executor": "spark-warm" if warm else executor,
                "rows": total,
                "partitions": parts,
                "start_s": round(start, 3),
                "warm_up_s": round(warm_up, 3),
                "first_s": round(progress.at - began, 3),
                "refresh_s": round(refresh, 3),
                "process_s": round(time.perf_counter() - STARTED, 3),
                "peak_pss_mb": peak,
                "cpu_s": round(cpu, 2),
                "refresh_cpu_s": round(cpu - cpu_before, 2),
                "rows_per_s": round(total / refresh),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

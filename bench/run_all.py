"""Run every contender in its own fresh process, then print and save the summary.

    .venv/bin/python bench/run_all.py [--reps 3] [--only NAME ...] [--out DIR]

Repetitions go round-robin (every contender once, then again), so a noisy minute on a shared
machine spreads over all of them. The slow contenders run at most 3 times (dlt's dicts with
Parquet, ~25 s; the no-op, ~30 s with its initial refresh) and dlt's default dicts run
(insert_values into duckdb, ~2-3 min, ~5 GB) once. Each run's RESULT line, wall and CPU time,
the CPU time other processes used meanwhile and the load average before it go to
DIR/raw.jsonl; the medians go to DIR/summary.md and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import summary

HERE = Path(__file__).parent
ROOT = HERE.parent
HEADWATER_PY = str(ROOT / ".venv" / "bin" / "python")
DLT_PY = str(HERE / ".venvs" / "dlt" / "bin" / "python")


@dataclass(frozen=True)
class Contender:
    name: str
    python: str
    args: tuple[str, ...]
    max_reps: int | None = None  # None: as many as --reps


CONTENDERS = [
    Contender("floor_records", HEADWATER_PY, ("bench_floor.py", "records")),
    Contender("floor_arrow", HEADWATER_PY, ("bench_floor.py", "arrow")),
    Contender(
        "headwater_records_thread", HEADWATER_PY, ("bench_headwater.py", "records", "thread")
    ),
    Contender(
        "headwater_records_process", HEADWATER_PY, ("bench_headwater.py", "records", "process")
    ),
    Contender("headwater_arrow_thread", HEADWATER_PY, ("bench_headwater.py", "arrow", "thread")),
    Contender("headwater_arrow_process", HEADWATER_PY, ("bench_headwater.py", "arrow", "process")),
    Contender(  # not a target: the thread executor with one thread per core, for comparison
        "headwater_records_thread_c2",
        HEADWATER_PY,
        ("bench_headwater.py", "records", "thread", "2"),
    ),
    Contender(
        "headwater_arrow_thread_c2", HEADWATER_PY, ("bench_headwater.py", "arrow", "thread", "2")
    ),
    Contender("dlt_arrow", DLT_PY, ("bench_dlt.py", "arrow")),
    Contender("dlt_dicts_parquet", DLT_PY, ("bench_dlt.py", "dicts_parquet"), max_reps=3),
    Contender("headwater_noop", HEADWATER_PY, ("bench_noop.py",), max_reps=3),
    Contender("dlt_dicts", DLT_PY, ("bench_dlt.py", "dicts"), max_reps=1),
]


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all processes, all cores)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_once(contender: Contender, rep: int, logs: Path) -> dict:
    """One fresh process; its RESULT line plus what the parent sees (wall, CPU, load)."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = busy_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(
        [contender.python, *contender.args], cwd=HERE, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    busy = busy_cpu_s() - busy
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log = logs / f"{contender.name}_{rep}.log"
    log.write_text(done.stdout + done.stderr)
    results = [
        json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")
    ]
    return {
        "name": contender.name,
        "rep": rep,
        "rc": done.returncode,
        "process_wall_s": round(wall, 3),
        "process_cpu_s": round(cpu, 3),
        "others_cpu_s": round(max(0.0, busy - cpu), 2),  # other tenants, and this driver
        "loadavg1_before": load,
        "result": results[-1] if done.returncode == 0 and results else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="contender names to run (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "out" / time.strftime("%Y%m%d-%H%M%S"))
    args = parser.parse_args()
    chosen = [c for c in CONTENDERS if not args.only or c.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    machine = summary.machine_facts(HEADWATER_PY, DLT_PY)
    (args.out / "machine.json").write_text(json.dumps(machine, indent=2))
    raw = args.out / "raw.jsonl"
    for rep in range(1, args.reps + 1):
        for contender in chosen:
            if contender.max_reps is not None and rep > contender.max_reps:
                continue
            run = run_once(contender, rep, logs)
            with raw.open("a") as f:
                f.write(json.dumps(run) + "\n")
            status = "ok" if run["result"] else f"FAILED rc={run['rc']}, see {logs}"
            seconds = run["result"]["seconds"] if run["result"] else "-"
            print(f"  rep {rep} {contender.name:28} {seconds} s  {status}", file=sys.stderr)
    runs = [json.loads(line) for line in raw.read_text().splitlines()]
    text = summary.render(machine, runs, args.reps)
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

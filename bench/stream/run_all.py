"""Run every issue-3 contender in its own fresh process, then print and save the summary.

    .venv/bin/python bench/stream/run_all.py [--reps 5] [--only NAME ...] [--out DIR]

Repetitions go round-robin (every contender once, then again), and Headwater and Pathway
alternate. The machine is shared (other sessions run test suites in bursts), so before each
run the driver waits, up to BENCH_QUIET_WAIT_S (120), for a second in which the rest of the
machine used less than BENCH_NOISE_CORES (0.1) of a core; and a run during which the rest of
the machine used more than that on average is marked `noisy` and run again, at most
BENCH_NOISY_RETRIES (2) more times. Each run's RESULT line, its process's wall and CPU
seconds and peak RSS (from `wait4`, so per process, not the largest of all children), the
CPU seconds the rest of the machine used meanwhile and the load average before it go to
DIR/raw.jsonl, noisy runs included; the medians (of the clean runs) go to DIR/summary.md and
stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import summary

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
HEADWATER_PY = str(ROOT / ".venv" / "bin" / "python")
PATHWAY_PY = str(HERE.parent / ".venvs" / "pathway" / "bin" / "python")
NOISE_CORES = float(os.environ.get("BENCH_NOISE_CORES", "0.1"))
QUIET_WAIT_S = float(os.environ.get("BENCH_QUIET_WAIT_S", "120"))
NOISY_RETRIES = int(os.environ.get("BENCH_NOISY_RETRIES", "2"))


@dataclass(frozen=True)
class Contender:
    name: str
    python: str
    args: tuple[str, ...]


def _contenders() -> list[Contender]:
    found = []
    for script, variants in (
        ("bench_throughput.py", ("pk", "nopk")),
        ("bench_latency.py", ("timer", "commit")),
    ):
        for variant in variants:
            for engine, python in (("headwater", HEADWATER_PY), ("pathway", PATHWAY_PY)):
                found.append(Contender(f"{engine}_{variant}", python, (script, engine, variant)))
    return found


CONTENDERS = _contenders()


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all processes, all cores)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet() -> float:
    """Wait for a second in which the machine is (nearly) idle; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < QUIET_WAIT_S:
        busy = busy_cpu_s()
        time.sleep(1.0)
        if busy_cpu_s() - busy < NOISE_CORES:
            break
    return round(time.monotonic() - started, 1)


def run_once(contender: Contender, rep: int, attempt: int, logs: Path) -> dict:
    """One fresh process; its RESULT line plus what the parent sees (wall, CPU, RSS, load)."""
    waited = wait_quiet()
    load = os.getloadavg()[0]
    log = logs / f"{contender.name}_{rep}_{attempt}.log"
    busy = busy_cpu_s()
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(
            [contender.python, *contender.args], cwd=HERE, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
    child.returncode = rc = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    busy = busy_cpu_s() - busy
    cpu = usage.ru_utime + usage.ru_stime  # with the poller's, which the child waits for
    results = [
        json.loads(line[7:]) for line in log.read_text().splitlines() if line.startswith("RESULT ")
    ]
    others = max(0.0, busy - cpu)  # other tenants, and this driver
    return {
        "name": contender.name,
        "rep": rep,
        "attempt": attempt,
        "noisy": others > NOISE_CORES * wall,
        "quiet_wait_s": waited,
        "rc": rc,
        "process_wall_s": round(wall, 3),
        "process_cpu_s": round(cpu, 3),
        "process_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "others_cpu_s": round(others, 2),
        "loadavg1_before": load,
        "result": results[-1] if rc == 0 and results else None,
    }


def _show(run: dict, logs: Path) -> None:
    result = run["result"]
    status = "ok" if result else f"FAILED rc={run['rc']}, see {logs}"
    if run["noisy"]:
        status += f" but noisy (others used {run['others_cpu_s']} CPU s)"
    shown = (
        "-"
        if not result
        else f"{result['rows_per_s']:,} rows/s"
        if "rows_per_s" in result
        else f"p50 {result['latency_ms']['p50']} ms"
    )
    print(f"  rep {run['rep']} {run['name']:18} {shown:>18}  {status}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="contender names to run (default: all)")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / f"stream-{stamp}")
    args = parser.parse_args()
    chosen = [c for c in CONTENDERS if not args.only or c.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    machine = summary.machine_facts(HEADWATER_PY, PATHWAY_PY)
    (args.out / "machine.json").write_text(json.dumps(machine, indent=2))
    raw = args.out / "raw.jsonl"
    for rep in range(1, args.reps + 1):
        for contender in chosen:
            for attempt in range(1, NOISY_RETRIES + 2):
                run = run_once(contender, rep, attempt, logs)
                with raw.open("a") as f:
                    f.write(json.dumps(run) + "\n")
                _show(run, logs)
                if not run["noisy"]:
                    break
    runs = [json.loads(line) for line in raw.read_text().splitlines()]
    text = summary.render(machine, runs, args.reps)
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

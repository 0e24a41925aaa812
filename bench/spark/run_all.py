"""Local executors vs Spark `local[2]` on the CPU-bound connector, each run in a fresh process.

    .venv/bin/python bench/spark/run_all.py [--reps 3] [--sizes 10000 100000 1000000]
                                [--executors thread process spark spark-warm] [--out DIR]

`--sizes` are rows per partition (8 partitions). Runs go round-robin (each executor at each
size once, then again), so a noisy minute spreads over all of them. Every RESULT line, with the
load average before the run and the CPU seconds the rest of the machine used meanwhile, goes to
DIR/raw.jsonl; medians, a linear fit of refresh time against rows per executor (fixed cost +
rows / rate) and the size where Spark would start to pay go to DIR/summary.md and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
import machine  # noqa: E402 -- bench/machine.py, beside this folder

PY = str(ROOT / ".venv" / "bin" / "python")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (user+nice+system+irq+softirq+steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / os.sysconf("SC_CLK_TCK")


def run_one(executor: str, rows_per_part: int, logs: Path) -> dict:
    load = os.getloadavg()[0]
    before, wall = busy_seconds(), time.perf_counter()
    done = subprocess.run(
        [PY, str(HERE / "bench_spark.py"), executor, str(rows_per_part)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - wall
    busy = busy_seconds() - before
    (logs / f"{executor}_{rows_per_part}_{int(time.time())}.log").write_text(
        done.stdout + "\n--- stderr ---\n" + done.stderr
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{executor} {rows_per_part} failed:\n{done.stderr[-3000:]}")
    result = json.loads(line.removeprefix("RESULT "))
    # The tree's CPU is counted to the refresh's end; the read-back check after it is ours too,
    # so "others" slightly overstates the rest of the machine.
    result.update(
        load_before=round(load, 2),
        others_cores=round(max(0.0, busy - result["cpu_s"]) / wall, 2),
    )
    return result


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares: seconds = fixed + rows / rate. Returns (fixed seconds, rows per second)."""
    slope, intercept = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
    return intercept, (1 / slope if slope > 0 else float("inf"))


def summarize(results: list[dict], facts: dict, command: str) -> str:
    lines = [
        "| machine | |",
        *machine.table(facts, {"project venv": "venv"})[1:],
        "",
        f"Command: `{command}`",
        "",
        "| executor | rows | runs | Spark start s | first partition s | refresh s | "
        "whole process s | rows/s (refresh) | peak PSS MB (tree) | CPU s (tree) | "
        "CPU s (refresh) | others' cores | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in results:
        groups.setdefault((r["executor"], r["rows"]), []).append(r)
    medians: dict[tuple[str, int], dict] = {}
    for (executor, rows), runs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "executor"}
        medians[(executor, rows)] = med
        lines.append(
            f"| {executor} | {rows:,} | {len(runs)} | {med['start_s']:.1f} | {med['first_s']:.2f} "
            f"| {med['refresh_s']:.2f} | {med['process_s']:.1f} | {med['rows_per_s']:,.0f} | "
            f"{med['peak_pss_mb']:,.0f} | {med['cpu_s']:.1f} | {med['refresh_cpu_s']:.1f} | "
            f"{med['others_cores']:.2f} | "
            f"{med['load_before']:.2f} |"
        )
    lines += [
        "",
        "| executor | fixed cost s (fit) | rows/s (fit) | start s (median) |",
        "|---|---|---|---|",
    ]
    fits = {}
    for executor in sorted({e for e, _ in medians}):
        points = [(rows, m["refresh_s"]) for (e, rows), m in medians.items() if e == executor]
        if len(points) < 2:
            continue
        fixed, rate = fit(points)
        start = statistics.median(m["start_s"] for (e, _), m in medians.items() if e == executor)
        fits[executor] = (fixed + start, rate)
        lines.append(f"| {executor} | {fixed:.2f} | {rate:,.0f} | {start:.1f} |")
    for spark in ("spark", "spark-warm"):
        if spark in fits and "process" in fits:
            lines += [
                "",
                f"Against the process executor, {spark}:",
                "",
                _crossover(fits["process"], fits[spark]),
            ]
    return "\n".join(lines) + "\n"


def _crossover(local: tuple[float, float], spark: tuple[float, float]) -> str:
    """Rows above which Spark with `cores` cores would beat the local process executor on
    2 cores, if Spark's rate grew with its cores (an extrapolation from local[2])."""
    (a_l, r_l), (a_s, r_s) = local, spark
    out = ["| Spark cores (extrapolated) | Spark pays above (rows) |", "|---|---|"]
    for cores in (2, 8, 32, 128):
        rate = r_s * cores / 2
        gain = 1 / r_l - 1 / rate
        rows = (a_s - a_l) / gain if gain > 0 else None
        out.append(f"| {cores} | {'never' if rows is None else f'{rows:,.0f}'} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--executors", nargs="+", default=["thread", "process", "spark", "spark-warm"]
    )
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / "spark")
    args = parser.parse_args()
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    facts = machine.facts({"venv": (PY, "pyspark pyarrow pandas")})
    results = []
    with (args.out / "raw.jsonl").open("a") as raw:
        for rep in range(args.reps):
            for rows in args.sizes:
                for executor in args.executors:
                    result = run_one(executor, rows, logs)
                    result["rep"] = rep
                    raw.write(json.dumps(result) + "\n")
                    raw.flush()
                    results.append(result)
                    print(json.dumps(result), file=sys.stderr, flush=True)
    command = "python bench/spark/run_all.py " + " ".join(sys.argv[1:])
    text = summarize(results, facts, command)
    (args.out / "summary.md").write_text(text)
    (args.out / "machine.json").write_text(json.dumps(facts, indent=2))
    print(text)


if __name__ == "__main__":
    main()

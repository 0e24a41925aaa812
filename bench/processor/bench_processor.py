"""Issue 4: processor statements, end to end through the sandbox, beside their floors.

    .venv/bin/python bench/processor/bench_processor.py [--reps 30] [--out DIR]

Measures, each as a fresh `run_statement` call (gate, sandbox start, run, validate):

* `trivial`: `return [{"n": 1}]` in bulk mode;
* `pandas`: a statement that imports pandas and builds its rows with a DataFrame;
* `row_by_row`: 10,000 input rows, row-by-row processing, one call (rows per second);
* `trivial (warm)` and `pandas (warm)`: the same statements with `warm_workers=1`, so each run
  takes a sandboxed worker started ahead of time with pandas and numpy already imported. The
  pool is filled before the first rep and, between reps, the benchmark waits (untimed) until the
  replacement worker is ready: back-to-back runs faster than a worker starts (~0.5 s with
  pandas) would sometimes get a cold start instead, which is what the cold rows measure. Every
  warm rep is checked to have been served by a warm worker.

Beside them, in the same run, the floors a sandboxed Python cannot beat on this machine:
`python -I -c pass` (a bare interpreter), the same inside bubblewrap with the sandbox's
namespaces, and that plus `import pandas`. The ratio to the bubblewrap floor says how much the
layers above the OS sandbox (gate, worker, policy, seccomp, contract) cost.

Peak RSS: the parent's (`ru_maxrss`), and a sandboxed interpreter's (bare and with pandas),
which the floors print; a worker holds about that plus the statement's own data.
Prints a markdown report and writes `raw.json` into `--out`.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import machine  # noqa: E402 - bench/machine.py, shared by every benchmark's report

from headwater.processor import (  # noqa: E402
    ProcessorSettings,
    run_statement,
    shutdown_warm_workers,
    warm,
)

TRIVIAL = 'return [{"n": 1}]'
PANDAS = """
import pandas as pd
frame = pd.DataFrame({"n": [1, 2, 3]})
return [{"n": int(v)} for v in frame["n"]]
"""
ROW = 'return [{"n": INPUT_DATA[0]["n"] + 1}]'
TARGETS = {"trivial": 0.100, "pandas": 0.400, "trivial (warm)": 0.100, "pandas (warm)": 0.400}
WARM = ProcessorSettings(warm_workers=1)


def timed(
    call: Callable[[], object], reps: int, before: Callable[[], object] | None = None
) -> list[float]:
    seconds = []
    for _ in range(reps):
        if before is not None:
            before()  # untimed
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def ok(
    statement: str,
    rows: list[dict] | None = None,
    processing: str = "bulk",
    settings: ProcessorSettings | None = None,
) -> None:
    result = run_statement(
        statement, {"n": "int"}, rows or [], processing=processing, settings=settings
    )
    if result.verdict != "ok":
        raise SystemExit(f"benchmark statement failed: {result.error}")


def warm_latency(reps: int) -> dict[str, list[float]]:
    """Both statements on warm workers; each rep starts once the pool's worker is ready."""
    ok(TRIVIAL, settings=WARM)  # probes the sandbox for these settings and starts the pool
    pool = warm.pool_for(WARM)

    def refilled() -> None:
        if not pool.wait_until_ready(timeout_s=60):
            raise SystemExit("the warm worker did not start within 60 s")

    latency = {}
    for name, statement in (("trivial (warm)", TRIVIAL), ("pandas (warm)", PANDAS)):
        served = pool.served
        latency[name] = timed(lambda s=statement: ok(s, settings=WARM), reps, refilled)
        if pool.served - served != reps:
            raise SystemExit(f"{name}: {reps - pool.served + served} reps started cold")
    shutdown_warm_workers()
    return latency


def floor(argv: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(argv, check=True, capture_output=True)


def sandboxed_rss_mb(code: str) -> int:
    done = subprocess.run(bwrap_floor(code), check=True, capture_output=True, text=True)
    return round(int(done.stdout) / 1024)


def bwrap_floor(code: str) -> list[str]:
    """bubblewrap with the sandbox's namespaces and read-only runtime, running `code`."""
    prefix, base = sys.prefix, sys.base_prefix
    return [
        "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--uid", "65534",
        "--gid", "65534", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64",
        "/lib64", "--symlink", "usr/bin", "/bin", "--ro-bind", base, base, "--ro-bind", prefix,
        prefix, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv",
        "--setenv", "OPENBLAS_NUM_THREADS", "1", "--setenv", "OMP_NUM_THREADS", "1",
        f"{prefix}/bin/python", "-I", "-B", "-c", code + "; import resource, sys; "
        "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))",
    ]  # fmt: skip


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
        "min_ms": round(ordered[0] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / "processor")
    args = parser.parse_args()
    facts = machine.facts({"project_venv": (sys.executable, "headwater pandas numpy")})
    ok(TRIVIAL)  # warm the sandbox probe and the page cache: first runs are not the subject
    ok(PANDAS)
    latency = {
        "python -I -c pass (floor)": timed(
            floor([sys.executable, "-I", "-B", "-c", "pass"]), args.reps
        ),
        "bwrap + python (floor)": timed(floor(bwrap_floor("pass")), args.reps),
        "bwrap + python + import pandas (floor)": timed(
            floor(bwrap_floor("import pandas")), args.reps
        ),
        "trivial": timed(lambda: ok(TRIVIAL), args.reps),
        "pandas": timed(lambda: ok(PANDAS), args.reps),
        **warm_latency(args.reps),
    }
    rows = [{"n": i} for i in range(args.rows)]
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        ok(ROW, rows, processing="row")
        runs.append(time.perf_counter() - started)
    rows_per_s = round(args.rows / statistics.median(runs))
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "machine": facts,
        "latency": {name: summary(s) for name, s in latency.items()},
        "row_by_row": {
            "rows": args.rows,
            "seconds": [round(s, 3) for s in runs],
            "rows_per_s": rows_per_s,
        },
        "peak_rss_mb": {
            "parent": round(parent_peak),
            "sandboxed python": sandboxed_rss_mb("pass"),
            "sandboxed python + pandas": sandboxed_rss_mb("import pandas"),
        },
        "reps": args.reps,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "raw.json").write_text(json.dumps(report, indent=2))
    print(render(report))


def render(report: dict) -> str:
    lat = report["latency"]
    bwrap = lat["bwrap + python (floor)"]["p50_ms"]
    bwrap_pandas = lat["bwrap + python + import pandas (floor)"]["p50_ms"]
    lines = [
        f"# Processor benchmark ({report['machine']['date_utc']} UTC, {report['reps']} reps)",
        "",
        "| what | p50 ms | p90 ms | min ms | max ms | p50 / its floor |",
        "|---|---|---|---|---|---|",
    ]
    floors = {"trivial": bwrap, "pandas": bwrap_pandas}
    for name, s in lat.items():
        ratio = f"{s['p50_ms'] / floors[name]:.2f}x" if name in floors else ""
        lines.append(
            f"| {name} | {s['p50_ms']} | {s['p90_ms']} | {s['min_ms']} | {s['max_ms']} | {ratio} |"
        )
    rbr = report["row_by_row"]
    lines += [
        "",
        f"Row by row, {rbr['rows']:,} rows in one run: {rbr['rows_per_s']:,} rows/s "
        f"(runs: {', '.join(map(str, rbr['seconds']))} s).",
        "Peak RSS: "
        + ", ".join(f"{name} {mb} MB" for name, mb in report["peak_rss_mb"].items())
        + ".",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for name, limit in TARGETS.items():
        p50 = lat[name]["p50_ms"]
        verdict = "yes" if p50 <= limit * 1000 else "NO"
        lines.append(f"| {name} p50 <= {limit * 1000:.0f} ms | {p50} ms | {verdict} |")
    met = rbr["rows_per_s"] >= 5000
    lines.append(
        f"| row by row >= 5,000 rows/s | {rbr['rows_per_s']:,} | {'yes' if met else 'NO'} |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

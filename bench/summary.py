"""The benchmark's report: machine facts, medians, ratios and targets, as markdown."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import machine
from common import PARTS, ROWS_PER_PART, TOTAL_ROWS
from machine import table as machine_table

ROOT = Path(__file__).parent.parent

WHAT = {
    "floor_records": "pyarrow floor: dicts -> `Table.from_pylist` -> `write_table`",
    "floor_arrow": "pyarrow floor: Python lists -> `pa.table` -> `write_table`",
    "headwater_records_thread": "Headwater `read_records`, thread executor (defaults: 4 threads)",
    "headwater_records_process": "Headwater `read_records`, process executor, 2 workers",
    "headwater_arrow_thread": "Headwater `read_arrow`, thread executor (defaults: 4 threads)",
    "headwater_arrow_process": "Headwater `read_arrow`, process executor, 2 workers",
    "headwater_records_thread_c2": "extra: Headwater `read_records`, thread executor, 2 threads",
    "headwater_arrow_thread_c2": "extra: Headwater `read_arrow`, thread executor, 2 threads",
    "dlt_dicts": "dlt dicts -> duckdb, default loader format (insert_values), 1 run",
    "dlt_dicts_parquet": 'dlt dicts -> duckdb, `loader_file_format="parquet"`',
    "dlt_arrow": "dlt Arrow tables (one per partition) -> duckdb",
}
ARROW = {name for name in WHAT if "arrow" in name}
# (contender, baseline, at least this many times the baseline's rows/s)
TARGETS = [
    ("headwater_records_thread", "floor_records", 0.7),
    ("headwater_records_thread", "dlt_dicts_parquet", 10.0),
    ("headwater_records_process", "floor_records", 0.7),
    ("headwater_records_process", "dlt_dicts_parquet", 10.0),
    ("headwater_arrow_thread", "floor_arrow", 0.9),
    ("headwater_arrow_process", "floor_arrow", 0.9),
]
NOOP_TARGET_S = 2.0


def machine_facts(headwater_python: str, dlt_python: str) -> dict:
    return machine.facts(
        {
            "headwater_venv": (headwater_python, "headwater pyarrow duckdb sqlalchemy pandas"),
            "dlt_venv": (dlt_python, "dlt duckdb pyarrow"),
        }
    )


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def medians(runs: list[dict]) -> dict[str, dict]:
    """Per contender: runs tried and ok, and the median of every number it reported."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["name"] for r in runs):
        tried = [r for r in runs if r["name"] == name]
        ok = [r for r in tried if r["result"]]
        row = {"tried": len(tried), "ok": len(ok)}
        if ok:
            results = [r["result"] for r in ok]
            numbers = {k for res in results for k, v in res.items() if isinstance(v, int | float)}
            row |= {k: _median([res[k] for res in results if k in res]) for k in numbers}
            row["rows_per_s"] = row["rows"] / row["seconds"]
            for key in ("process_wall_s", "process_cpu_s", "others_cpu_s", "loadavg1_before"):
                row[key] = _median([r[key] for r in ok])
            phases = [res["phases_cumulative_s"] for res in results if "phases_cumulative_s" in res]
            if phases:
                row["phases"] = {k: _median([p[k] for p in phases]) for k in phases[0]}
        out[name] = row
    return out


def _ratio(stats: dict[str, dict], name: str, baseline: str) -> float | None:
    a, b = stats.get(name, {}), stats.get(baseline, {})
    if "rows_per_s" not in a or "rows_per_s" not in b:
        return None
    return a["rows_per_s"] / b["rows_per_s"]


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render(machine: dict, runs: list[dict], reps: int) -> str:
    stats = medians(runs)
    lines = [
        "# Issue 2 benchmark: Headwater vs dlt 1.31 vs the pyarrow floor",
        "",
        f"Run {machine['date_utc']} UTC. Command: `bash bench/run.sh`"
        f" (`run_all.py --reps {reps}`).",
        "",
        *machine_table(
            machine,
            {
                "project venv (Headwater, floor)": "headwater_venv",
                "peer venv (bench/.venvs/dlt)": "dlt_venv",
            },
        ),
        "",
        f"## Throughput: {TOTAL_ROWS:,} rows, {PARTS} partitions x {ROWS_PER_PART:,},"
        f" medians of up to {reps} runs",
        "",
        "Each run is a fresh process. `x floor` compares rows/s with the floor of the same input"
        " (dicts: `floor_records`; Arrow: `floor_arrow`). Peak RSS is the process's ru_maxrss"
        " (threads included); `worker MB` is the largest worker process (process executor)."
        " `others' CPU s`: CPU time the rest of the machine used during the run (noise).",
        "",
        "| contender | what | runs ok | seconds | rows/s | x floor | x dlt Parquet | peak RSS MB"
        " | worker MB | process wall s | CPU s | others' CPU s | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in WHAT:
        if name not in stats:
            continue
        s = stats[name]
        if not s["ok"]:
            lines.append(f"| {name} | {WHAT[name]} | 0/{s['tried']} | FAILED | | | | | | | | | |")
            continue
        floor = "floor_arrow" if name in ARROW else "floor_records"
        worker = f"{s['peak_rss_child_mb']:.0f}" if "process" in name else "-"
        lines.append(
            f"| {name} | {WHAT[name]} | {s['ok']}/{s['tried']} | {s['seconds']:.2f} | "
            f"{s['rows_per_s']:,.0f} | {_x(_ratio(stats, name, floor))} | "
            f"{_x(_ratio(stats, name, 'dlt_dicts_parquet'))} | {s['peak_rss_mb']:.0f} | {worker} | "
            f"{s['process_wall_s']:.2f} | {s['process_cpu_s']:.2f} | {s['others_cpu_s']:.2f} | "
            f"{s['loadavg1_before']:.2f} |"
        )
    lines += _dlt_phases(stats) + _noop(stats) + _targets(stats)
    return "\n".join(lines) + "\n"


def _dlt_phases(stats: dict[str, dict]) -> list[str]:
    rows = [
        n for n in ("dlt_dicts", "dlt_dicts_parquet", "dlt_arrow") if "phases" in stats.get(n, {})
    ]
    if not rows:
        return []
    lines = ["", "dlt phases (cumulative seconds at the end of each, medians):", ""]
    lines += ["| dlt run | extract | normalize | load |", "|---|---|---|---|"]
    for name in rows:
        p = stats[name]["phases"]
        lines.append(
            f"| {name} | {p['extract_s']:.2f} | {p['normalize_s']:.2f} | {p['load_s']:.2f} |"
        )
    return lines


def _noop(stats: dict[str, dict]) -> list[str]:
    s = stats.get("headwater_noop")
    if not s:
        return []
    lines = ["", "## No-op refresh: 10,000 unchanged partitions (1 row each)", ""]
    if not s["ok"]:
        return [*lines, f"FAILED in all {s['tried']} runs."]
    return [
        *lines,
        "| runs ok | initial refresh s | listing alone s | no-op refresh s | no-op - listing s"
        " | peak RSS MB (no-op) | peak RSS MB (initial) |",
        "|---|---|---|---|---|---|---|",
        f"| {s['ok']}/{s['tried']} | {s['initial_s']:.2f} | {s['listing_s']:.4f} | "
        f"{s['seconds']:.3f} | {s['overhead_s']:.3f} | {s['peak_rss_mb']:.0f} | "
        f"{s['initial_peak_rss_mb']:.0f} |",
    ]


def _targets(stats: dict[str, dict]) -> list[str]:
    lines = ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, baseline, floor in TARGETS:
        ratio = _ratio(stats, name, baseline)
        met = "not measured" if ratio is None else ("yes" if ratio >= floor else "**NO**")
        lines.append(f"| {name} >= {floor:g}x {baseline} | {_x(ratio)} | {met} |")
    noop = stats.get("headwater_noop", {})
    if "overhead_s" in noop:
        met = "yes" if noop["overhead_s"] < NOOP_TARGET_S else "**NO**"
        measured = f"{noop['overhead_s']:.3f} s"
        lines.append(f"| no-op refresh - listing < {NOOP_TARGET_S:g} s | {measured} | {met} |")
    else:
        lines.append(f"| no-op refresh - listing < {NOOP_TARGET_S:g} s | - | not measured |")
    return lines


if __name__ == "__main__":  # re-render a finished run: python bench/summary.py bench/out/<run>
    import sys

    folder = Path(sys.argv[1])
    found = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    facts = json.loads((folder / "machine.json").read_text())
    print(render(facts, found, max(r["rep"] for r in found)))

"""The issue-3 report: machine facts, medians, Headwater / Pathway ratios and targets, as markdown.

.venv/bin/python bench/stream/summary.py bench/out/<run>    # re-render a finished run
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
sys.path.insert(0, str(ROOT / "bench"))  # the shared bench/machine.py

import machine  # noqa: E402 - found through the path set just above
from machine import table as machine_table  # noqa: E402

THROUGHPUT = {
    "headwater_pk": "Headwater `stream`, `key` primary key (upserts)",
    "pathway_pk": "Pathway 0.33 `pw.io.python`, `key` primary key",
    "headwater_nopk": "Headwater `stream`, no primary key (appends)",
    "pathway_nopk": "Pathway 0.33 `pw.io.python`, no primary key",
}
LATENCY = {
    "headwater_timer": "Headwater, `autocommit_duration_ms=10`",
    "pathway_timer": "Pathway, `autocommit_duration_ms=10`",
    "headwater_commit": "Headwater, `commit()` after every row, no autocommit",
    "pathway_commit": "Pathway, `commit()` after every row, no autocommit",
}
RATE_TARGET = 5.0  # Headwater's rows/s at least this many times Pathway's
RSS_TARGET = 0.5  # Headwater's peak RSS at most this fraction of Pathway's
PERCENTILES = ("p50", "p90", "p99")


def machine_facts(headwater_python: str, pathway_python: str) -> dict:
    return machine.facts(
        {
            "headwater_venv": (headwater_python, "headwater pyarrow numpy"),
            "pathway_venv": (pathway_python, "pathway numpy"),
        }
    )


def _median(values: list[float]) -> float:
    return statistics.median(values)


def stats(runs: list[dict]) -> dict[str, dict]:
    """Per contender: repetitions tried and ok, and the medians (with min and max) of its
    numbers. Each repetition counts once: its clean run, else its last noisy one (flagged)."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["name"] for r in runs):
        tried = [r for r in runs if r["name"] == name]
        ok = []
        for rep in dict.fromkeys(r["rep"] for r in tried):
            attempts = [r for r in tried if r["rep"] == rep and r["result"]]
            clean = [r for r in attempts if not r.get("noisy")]
            ok += clean[:1] or attempts[-1:]
        row: dict = {
            "tried": len({r["rep"] for r in tried}),
            "ok": len(ok),
            "reruns": sum(1 for r in tried if r.get("noisy")),
            "noisy_used": sum(1 for r in ok if r.get("noisy")),
        }
        if ok:
            res = [r["result"] for r in ok]
            for key in ("process_cpu_s", "process_peak_rss_mb", "others_cpu_s", "loadavg1_before"):
                row[key] = _median([r[key] for r in ok])
            row["peak_rss_mb"] = _median([x["peak_rss_mb"] for x in res])
            row["rows"], row["commit_every"] = res[0]["rows"], res[0].get("commit_every")
            if "run_s" in res[0] and "latency_ms" not in res[0]:
                runs_s = [x["run_s"] for x in res]
                row["run_s"], row["run_min"], row["run_max"] = _median(runs_s), *_span(runs_s)
                row["rows_per_s"] = res[0]["rows"] / row["run_s"]
                walls = [r["process_wall_s"] - r["result"]["check_s"] for r in ok]
                row["wall_s"] = _median(walls)
                row["wall_rows_per_s"] = res[0]["rows"] / row["wall_s"]
                for key in ("import_s", "producer_done_s"):
                    row[key] = _median([x[key] for x in res])
            if "latency_ms" in res[0]:
                for key in (*PERCENTILES, "max", "mean"):
                    values = [x["latency_ms"][key] for x in res]
                    row[key], row[key + "_span"] = _median(values), _span(values)
                row["n"] = sum(x["latency_ms"]["n"] for x in res)
        out[name] = row
    return out


def _span(values: list[float]) -> tuple[float, float]:
    return min(values), max(values)


def _runs(r: dict) -> str:
    """`ok/tried`, with the noisy runs that were rerun, and those kept for want of a clean one."""
    text = f"{r['ok']}/{r['tried']}"
    notes = []
    if r["reruns"]:
        notes.append(f"{r['reruns']} noisy, rerun")
    if r["noisy_used"]:
        notes.append(f"{r['noisy_used']} kept noisy")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render(machine: dict, runs: list[dict], reps: int) -> str:
    s = stats(runs)
    lines = [
        "# Issue 3 benchmark: Headwater streams vs Pathway 0.33",
        "",
        f"Run {machine['date_utc']} UTC. Command: `bash bench/stream/run.sh`"
        f" (`run_all.py --reps {reps}`).",
        "",
        *machine_table(
            machine,
            {
                "project venv (Headwater)": "headwater_venv",
                "peer venv (bench/.venvs/pathway)": "pathway_venv",
            },
        ),
    ]
    lines += _throughput(s, reps) + _latency(s, reps) + _targets(s)
    return "\n".join(lines) + "\n"


def _throughput(s: dict[str, dict], reps: int) -> list[str]:
    names = [n for n in THROUGHPUT if n in s]
    if not names:
        return []
    lines = [
        "",
        f"## Throughput: {s[names[0]].get('rows', 0):,} rows, commit every"
        f" {s[names[0]].get('commit_every', 0):,}, CSV sink (medians of up to {reps})",
        "",
        "`run() s` is `pw.run()` / `stream.run()`; `process wall s` is the whole process as the"
        " driver saw it (interpreter start, imports, run, exit) minus the read-back check."
        " Peak RSS: `ru_maxrss` right after `run()`. `CPU s`: the process's, all threads;"
        " `others' CPU s`: what the rest of the machine used meanwhile (noise; a run where it"
        " averaged over 0.1 core was rerun).",
        "",
        "| contender | what | runs ok | run() s [min-max] | rows/s | process wall s"
        " | rows/s by wall | import s | producer done s | peak RSS MB | CPU s | others' CPU s"
        " | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = s[name]
        if not r["ok"]:
            lines.append(f"| {name} | {THROUGHPUT[name]} | 0/{r['tried']} | FAILED" + " |" * 10)
            continue
        lines.append(
            f"| {name} | {THROUGHPUT[name]} | {_runs(r)} | {r['run_s']:.2f}"
            f" [{r['run_min']:.2f}-{r['run_max']:.2f}] | {r['rows_per_s']:,.0f} |"
            f" {r['wall_s']:.2f} | {r['wall_rows_per_s']:,.0f} | {r['import_s']:.2f} |"
            f" {r['producer_done_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['process_cpu_s']:.2f} |"
            f" {r['others_cpu_s']:.2f} | {r['loadavg1_before']:.2f} |"
        )
    lines += [
        "",
        "| Headwater / Pathway | rows/s (run) | rows/s (process wall) | peak RSS |",
        "|---|---|---|---|",
    ]
    for keyed in ("pk", "nopk"):
        lines.append(
            f"| {keyed} | {_x(_ratio(s, keyed, 'rows_per_s'))} |"
            f" {_x(_ratio(s, keyed, 'wall_rows_per_s'))} | {_x(_ratio(s, keyed, 'peak_rss_mb'))} |"
        )
    return lines


def _ratio(s: dict[str, dict], variant: str, key: str) -> float | None:
    a, b = s.get(f"headwater_{variant}", {}), s.get(f"pathway_{variant}", {})
    return a[key] / b[key] if key in a and key in b else None


def _latency(s: dict[str, dict], reps: int) -> list[str]:
    names = [n for n in LATENCY if n in s]
    if not names:
        return []
    lines = [
        "",
        "## Trickle latency: one row every 10 ms, `next()` to visible in the CSV (ms)",
        "",
        f"Per run: {s[names[0]].get('rows', 0):,} rows, the first 20 excluded; medians over up"
        f" to {reps} runs, with the"
        " range of the per-run values in brackets. Polled every 0.5 ms by a separate process.",
        "",
        "| contender | what | runs ok | rows | p50 | p90 | p99 | max | mean | peak RSS MB"
        " | CPU s | others' CPU s | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = s[name]
        if not r["ok"]:
            lines.append(f"| {name} | {LATENCY[name]} | 0/{r['tried']} | FAILED" + " |" * 10)
            continue
        cells = " | ".join(
            f"{r[k]:.2f} [{r[k + '_span'][0]:.2f}-{r[k + '_span'][1]:.2f}]"
            for k in (*PERCENTILES, "max", "mean")
        )
        lines.append(
            f"| {name} | {LATENCY[name]} | {_runs(r)} | {r['n']} | {cells} |"
            f" {r['peak_rss_mb']:.0f} | {r['process_cpu_s']:.2f} | {r['others_cpu_s']:.2f} |"
            f" {r['loadavg1_before']:.2f} |"
        )
    return lines


def _targets(s: dict[str, dict]) -> list[str]:
    lines = ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]

    def add(target: str, value: float | None, measured: str, met: bool) -> None:
        shown = "not measured" if value is None else ("yes" if met else "**NO**")
        lines.append(f"| {target} | {measured if value is not None else '-'} | {shown} |")

    for keyed in ("pk", "nopk"):
        rate = _ratio(s, keyed, "rows_per_s")
        add(
            f"{keyed}: rows/s >= {RATE_TARGET:g}x Pathway's",
            rate,
            _x(rate),
            rate is not None and rate >= RATE_TARGET,
        )
        rss = _ratio(s, keyed, "peak_rss_mb")
        add(
            f"{keyed}: peak RSS <= {RSS_TARGET:g}x Pathway's",
            rss,
            _x(rss),
            rss is not None and rss <= RSS_TARGET,
        )
    for mode in ("timer", "commit"):
        ours, theirs = s.get(f"headwater_{mode}", {}), s.get(f"pathway_{mode}", {})
        for p in PERCENTILES:
            value = ours[p] if p in ours and p in theirs else None
            measured = f"{ours[p]:.2f} vs {theirs[p]:.2f} ms" if value is not None else "-"
            add(
                f"{mode}: latency {p} <= Pathway's",
                value,
                measured,
                value is not None and ours[p] <= theirs[p],
            )
    return lines


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    found = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    facts = json.loads((folder / "machine.json").read_text())
    print(render(facts, found, max(r["rep"] for r in found)))

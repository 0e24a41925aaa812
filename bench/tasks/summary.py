"""The issue-5 report: machine facts, medians, Headwater / flytekit ratios and targets, as markdown.

.venv/bin/python bench/tasks/summary.py bench/out/<run>    # re-render a finished run
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

WHAT = {
    "headwater": "Headwater `headwater serve-connectors` (its native engine)",
    "flytekit": "flytekit 1.16.31 `pyflyte serve connector`",
    "headwater_aio": "Headwater on grpcio's engine, `--engine aio` (not a contender)",
    "floor_aio": "floor: bare `grpc.aio` server, canned answers (not a contender)",
    "floor_sync": "floor: bare `grpc.server`, 16 threads, canned answers (not a contender)",
    "floor_aio-options": "floor: `grpc.aio` with Headwater's server options and gRPC health",
    "hw_direct": "experiment: Headwater's `serve()` without the CLI",
    "hw_hints": "experiment: `direct` + type hints cached in `ResourceMeta.decode`",
    "hw_v1only": "experiment: `direct` without Flyte 2's services",
}
DEFAULT_LAYOUT = (2, 4)  # 2 client processes x 4 client threads: see README.md, "The clients"
DEFAULT_CLIENT = "sync"  # sync stubs on threads (or "aio": grpc.aio coroutines)
RATE_TARGET = 2.0  # Headwater's pairs/s at least this many times flytekit's, at a lower p99
LATENCY = ("p50", "p90", "p99", "max", "mean")


def machine_facts(headwater_python: str, flytekit_python: str) -> dict:
    return machine.facts(
        {
            "headwater_venv": (headwater_python, "headwater grpcio protobuf flyteidl"),
            "flytekit_venv": (flytekit_python, "flytekit grpcio protobuf flyteidl"),
        }
    )


def _used(runs: list[dict], name: str) -> tuple[list[dict], dict]:
    """The runs that count for one engine (per repetition: its clean run, else its least noisy
    one, flagged) and the bookkeeping."""
    tried = [r for r in runs if r["name"] == name]
    ok = []
    for rep in dict.fromkeys(r["rep"] for r in tried):
        attempts = [r for r in tried if r["rep"] == rep and r.get("result")]
        clean = [r for r in attempts if not r.get("noisy")]
        ok += clean[:1] or sorted(attempts, key=lambda r: r["others_cpu_s"])[:1]
    counts = {
        "tried": len({r["rep"] for r in tried}),
        "ok": len(ok),
        "reruns": sum(1 for r in tried if r.get("noisy")),
        "noisy_used": sum(1 for r in ok if r.get("noisy")),
        "failed": sum(1 for r in tried if not r.get("result")),
    }
    return ok, counts


def stats(runs: list[dict]) -> dict[str, dict]:
    """Per engine: the medians over its runs, with (min, max) spans for the main numbers."""
    out: dict[str, dict] = {}
    for name in WHAT:
        ok, row = _used(runs, name)
        if not any(r["name"] == name for r in runs):
            continue
        out[name] = row
        if not ok:
            continue
        res = [r["result"] for r in ok]

        def med(values: list[float], key: str, row: dict = row) -> None:
            row[key] = statistics.median(values)
            row[key + "_span"] = (min(values), max(values))

        med([x["pairs_per_s"] for x in res], "pairs_per_s")
        for p in LATENCY:
            med([x["pair_ms"][p] for x in res], p)
        for key in (
            "create_ms_p50", "get_ms_p50", "create_ms_p99", "get_ms_p99", "server_cores",
            "server_cpu_us_per_pair", "client_cores", "client_cpu_us_per_pair",
            "server_peak_rss_mb", "machine_cores",
        ):  # fmt: skip
            med([x[key] for x in res], key)
        med([r["server_hwm_mb"] for r in ok], "server_hwm_mb")
        med([r["others_cpu_s"] for r in ok], "others_cpu_s")
        med([r["loadavg1_before"] for r in ok], "loadavg1_before")
        med([r["ready_s"] for r in ok], "ready_s")
        row["pairs"] = sum(x["pairs"] for x in res)
        row["errors"] = sum(x["errors"] for x in res)
        row["error_samples"] = [s for x in res for s in x["error_samples"]][:3]
        row["server_processes"] = max(r["server_processes"] for r in ok)
        row["server_threads"] = max(r["server_threads"] for r in ok)
        row["window_s"] = statistics.median(r["window_s"] for r in ok)
    return out


def _runs(r: dict) -> str:
    text = f"{r['ok']}/{r['tried']}"
    notes = []
    if r["reruns"]:
        notes.append(f"{r['reruns']} noisy, rerun")
    if r["noisy_used"]:
        notes.append(f"{r['noisy_used']} kept noisy")
    if r["failed"]:
        notes.append(f"{r['failed']} failed")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _span(r: dict, key: str, fmt: str) -> str:
    low, high = r[key + "_span"]
    return f"{r[key]:{fmt}} [{low:{fmt}}-{high:{fmt}}]"


def ratio(
    s: dict[str, dict], key: str, top: str = "headwater", bottom: str = "flytekit"
) -> float | None:
    a, b = s.get(top, {}), s.get(bottom, {})
    return a[key] / b[key] if key in a and key in b and b[key] else None


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render(machine: dict, runs: list[dict], reps: int) -> str:
    s = stats(runs)
    procs, threads = machine.get("layout", DEFAULT_LAYOUT)
    lines = [
        "# Issue 5 benchmark: task connectors, Headwater vs flytekit's `pyflyte serve connector`",
        "",
        f"Run {machine['date_utc']} UTC. Command: `bash bench/tasks/run.sh`"
        f" (`run_all.py {machine.get('argv', f'--reps {reps}')}`; clients:"
        f" {machine.get('client', DEFAULT_CLIENT)} stubs).",
        "",
        *machine_table(
            machine,
            {
                "project venv (Headwater, the clients)": "headwater_venv",
                "peer venv (bench/.venvs/flytekit)": "flytekit_venv",
            },
        ),
        "",
        f"## CreateTask + GetTask pairs, {procs * threads} concurrent clients"
        f" ({procs} processes x {threads} threads), medians of up to {reps} runs",
        "",
        f"Each run: a fresh server, {machine.get('warmup_s', 3):g} s of warm-up, then"
        f" {machine.get('duration_s', 10):g} s measured; a pair counts if it started in the"
        " window. Latency is per pair (CreateTask sent to GetTask answered), in ms: the median"
        " over runs of each run's percentile, the range over runs in brackets. CPU in cores"
        " (CPU seconds / window seconds): the server's process tree, the client processes,"
        " and what the rest of the machine used (`others' CPU s`; a run where it averaged"
        " over 0.1 core was rerun). Peak RSS: the largest sum of VmRSS over the server's"
        " process tree, sampled every 0.1 s from start to stop; `VmHWM` is the kernel's"
        " high-water mark of the same processes.",
        "",
        "| engine | runs ok | pairs/s [min-max] | p50 | p90 | p99 | max | errors"
        " | server cores | server CPU us/pair | client cores | peak RSS MB | VmHWM MB"
        " | others' CPU s | load before | ready s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, what in WHAT.items():
        if name not in s:
            continue
        r = s[name]
        if not r["ok"]:
            lines.append(f"| {what} | {_runs(r)} | FAILED" + " |" * 14)
            continue
        lines.append(
            f"| {what} | {_runs(r)} | {_span(r, 'pairs_per_s', ',.0f')} |"
            f" {_span(r, 'p50', '.2f')} | {_span(r, 'p90', '.2f')} | {_span(r, 'p99', '.2f')} |"
            f" {_span(r, 'max', '.1f')} | {r['errors']} of {r['pairs']:,} |"
            f" {r['server_cores']:.2f} | {r['server_cpu_us_per_pair']:.0f} |"
            f" {r['client_cores']:.2f} | {r['server_peak_rss_mb']:.0f} |"
            f" {r['server_hwm_mb']:.0f} | {r['others_cpu_s']:.2f} | {r['loadavg1_before']:.2f} |"
            f" {r['ready_s']:.1f} |"
        )
    lines += [
        "",
        "Per call (medians over runs, ms): CreateTask alone and GetTask alone, p50 / p99.",
        "",
        "| engine | CreateTask p50 | CreateTask p99 | GetTask p50 | GetTask p99"
        " | client CPU us/pair | server processes / threads |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, what in WHAT.items():
        r = s.get(name, {})
        if not r.get("ok"):
            continue
        lines.append(
            f"| {what} | {r['create_ms_p50']:.2f} | {r['create_ms_p99']:.2f} |"
            f" {r['get_ms_p50']:.2f} | {r['get_ms_p99']:.2f} | {r['client_cpu_us_per_pair']:.0f} |"
            f" {r['server_processes']} / {r['server_threads']} |"
        )
    if "headwater" in s and "flytekit" in s:
        lines += _versus(s)
    if "headwater" in s and any(name.startswith("hw_") for name in s):
        lines += _experiments(s)
    for name in WHAT:
        for sample in s.get(name, {}).get("error_samples", []):
            lines.append(f"\n{name} error sample: `{sample}`")
    return "\n".join(lines) + "\n"


def _versus(s: dict[str, dict]) -> list[str]:
    rate, p99 = ratio(s, "pairs_per_s"), ratio(s, "p99")
    lines = [
        "",
        "| Headwater / flytekit | pairs/s | p50 | p99 | max | server CPU per pair | peak RSS |",
        "|---|---|---|---|---|---|---|",
        f"| ratio | {_x(rate)} | {_x(ratio(s, 'p50'))} | {_x(p99)} | {_x(ratio(s, 'max'))} |"
        f" {_x(ratio(s, 'server_cpu_us_per_pair'))} | {_x(ratio(s, 'server_peak_rss_mb'))} |",
    ]
    floor = s.get("floor_aio", {})
    if floor.get("ok") and s["flytekit"].get("ok"):
        lines.append(
            f"| (the `grpc.aio` floor / flytekit) | {_x(ratio(s, 'pairs_per_s', 'floor_aio'))} |"
            f" {_x(ratio(s, 'p50', 'floor_aio'))} | {_x(ratio(s, 'p99', 'floor_aio'))} |"
            f" {_x(ratio(s, 'max', 'floor_aio'))} |"
            f" {_x(ratio(s, 'server_cpu_us_per_pair', 'floor_aio'))} |"
            f" {_x(ratio(s, 'server_peak_rss_mb', 'floor_aio'))} |"
        )
    lines += [
        "",
        "## Target",
        "",
        "| target (from issue 5) | measured | met |",
        "|---|---|---|",
    ]
    target = f"pairs/s >= {RATE_TARGET:g}x flytekit's at a lower p99"
    if rate is None or p99 is None:
        lines.append(f"| {target} | - | not measured |")
    else:
        hw, fk = s["headwater"], s["flytekit"]
        met = rate >= RATE_TARGET and hw["p99"] < fk["p99"]
        lines.append(
            f"| {target} | {rate:.2f}x ({hw['pairs_per_s']:,.0f} vs {fk['pairs_per_s']:,.0f}"
            f" pairs/s); p99 {hw['p99']:.2f} vs {fk['p99']:.2f} ms | {'yes' if met else '**NO**'} |"
        )
    return lines


def _experiments(s: dict[str, dict]) -> list[str]:
    lines = [
        "",
        "## Experiments / Headwater's `serve-connectors` (same run)",
        "",
        "| experiment | pairs/s | p50 | p99 | server CPU per pair | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name in WHAT:
        if name.startswith("hw_") and s.get(name, {}).get("ok"):
            cells = " | ".join(
                _x(ratio(s, key, name, "headwater"))
                for key in ("pairs_per_s", "p50", "p99", "server_cpu_us_per_pair")
            )
            rss = _x(ratio(s, "server_peak_rss_mb", name, "headwater"))
            lines.append(f"| {WHAT[name]} | {cells} | {rss} |")
    return lines


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    found = [json.loads(line) for line in (folder / "raw.jsonl").read_text().splitlines()]
    facts = json.loads((folder / "machine.json").read_text())
    print(render(facts, found, max(r["rep"] for r in found)))

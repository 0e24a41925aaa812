"""`headwater server` under load: concurrent signed clients reading records pages and partition
lists and triggering runs, beside two floors (a bare FastAPI/uvicorn constant, and the server's
own unsigned /health).

    .venv/bin/python bench/server/load.py [--clients 8] [--procs 2] [--reps 3] [--out DIR]

Set-up: a fresh temporary home (SQLite catalog, local store), `headwater keys create`, then
`headwater server --workers 2 --log-level warning` in its own process; through the client a
data service, a dataflow and a partitioned component of PARTITIONS x ROWS rows, refreshed once.

Phases, each rep in this order, each WARMUP_S of warm-up then DURATION_S measured:

- `floor`: the same clients (signing every request too) against floor_server.py, a bare
  FastAPI app on uvicorn answering any GET with a constant;
- `health`: the same clients calling the real server's `GET /health` (the whole app, its
  middleware and uvicorn, no signature check, no catalog);
- `mix`: the real server, each call drawn at random: 45% a records page (`get_records`,
  limit 100, of a random partition), 45% the partitions list, 10% a run trigger
  (`refresh_component`; a 409 while a run is queued or running is an expected answer, `busy`,
  not an error; an accepted trigger runs a no-op refresh: 20 unchanged partitions).

The clients are `--procs` processes of `--clients / --procs` threads, each thread with its own
`headwater.client.Client` (its own connection). Answers are checked (100 rows a page, every
partition listed); a wrong answer counts as an error. Throughput counts calls started in the
window; latency is per call, nearest-rank percentiles over every client. CPU from /proc: the
server's process, the client processes, and the rest of the machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BENCH = HERE.parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import machine  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
TICK = os.sysconf("SC_CLK_TCK")
PARTITIONS = int(os.environ.get("BENCH_SERVER_PARTITIONS", "20"))
ROWS = int(os.environ.get("BENCH_SERVER_ROWS", "1000"))
WARMUP_S = float(os.environ.get("BENCH_SERVER_WARMUP_S", "3"))
DURATION_S = float(os.environ.get("BENCH_SERVER_DURATION_S", "10"))
PAGE = 100
FLOW = ("bench", "load")
COMPONENT = "orders"
MIXES: dict[str, list[tuple[str, int]]] = {
    "floor": [("floor", 1)],
    "health": [("health", 1)],
    "mix": [("records", 45), ("partitions", 45), ("trigger", 10)],
}
CONNECTOR = """
def list_objects(context, metadata):
    for i in range({partitions}):
        yield {{"name": f"p{{i:03d}}", "fingerprint": "1", "is_prefix": False}}

def read_records(context, metadata):
    for i in range({rows}):
        yield {{"id": i, "part": metadata["name"], "name": f"name_{{i}}", "value": i * 0.5}}
"""


# -- the clients (run in each client process) ------------------------------------------------------


def drive(
    host: str, key: dict[str, str], threads: int, phase: str, t0: float, t1: float, seed: int
) -> dict[str, Any]:
    """`threads` clients looping over the phase's mix until t1; what they saw from t0."""
    from headwater.client import Client, ConflictError

    names, weights = zip(*MIXES[phase], strict=True)
    parts = [f"p{i:03d}" for i in range(PARTITIONS)]
    found: dict[str, Any] = {"lat": {n: [] for n in names}, "busy": 0, "accepted": 0}
    found["errors"] = {n: 0 for n in names}
    found["error_samples"] = []
    lock = threading.Lock()

    def loop(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        lat: dict[str, list[int]] = {k: [] for k in names}
        errors = dict.fromkeys(names, 0)
        busy = accepted = 0
        samples: list[str] = []
        with Client(host, key["access_key"], key["secret_key"], scheme="http") as client:
            while (now := time.time()) < t1:
                kind = rng.choices(names, weights)[0]
                started = time.perf_counter()
                ok = True
                try:
                    if kind == "records":
                        page = client.get_records(
                            *FLOW, COMPONENT, limit=PAGE, partition=rng.choice(parts)
                        )
                        ok = len(page.rows) == PAGE
                    elif kind == "partitions":
                        ok = len(client.get_partitions(*FLOW, COMPONENT)) == PARTITIONS
                    elif kind == "trigger":
                        try:
                            client.refresh_component(*FLOW, COMPONENT)
                            accepted += now >= t0
                        except ConflictError:
                            busy += now >= t0
                    elif kind == "health":
                        client.health()
                    else:  # the floor: the same signed request, a constant answer
                        ok = client._http.request("GET", "/api/v1/floor").status_code == 200
                except Exception as exc:
                    ok = False
                    if len(samples) < 3:
                        samples.append(f"{kind}: {type(exc).__name__}: {exc}"[:300])
                us = int((time.perf_counter() - started) * 1e6)
                if now >= t0:
                    lat[kind].append(us)
                    errors[kind] += not ok
        with lock:
            for k in names:
                found["lat"][k] += lat[k]
                found["errors"][k] += errors[k]
            found["busy"] += busy
            found["accepted"] += accepted
            found["error_samples"] += samples

    workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    time.sleep(max(0.0, t0 - time.time()))  # the window's edges, not a synchronisation
    cpu0 = time.process_time()
    time.sleep(max(0.0, t1 - time.time()))
    found["cpu_s"] = time.process_time() - cpu0
    for w in workers:
        w.join()
    return found


# -- the servers --------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(client: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    from headwater.client.errors import ConnectionFailedError

    deadline = time.monotonic() + 60
    while True:  # a bounded retry loop until the server answers
        try:
            client.health()
            return
        except ConnectionFailedError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.05)


class Servers:
    """The Headwater server (with its data) and the floor, each in its own process."""

    def __init__(self, home: Path, out: Path) -> None:
        from headwater.client import Client, Component, PartitionedDefinition
        from headwater.vault import ServerKey

        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        self.env["HEADWATER_SECRET_KEY"] = ServerKey.generate()
        hw = [str(PY), "-m", "headwater", "--home", str(home)]
        done = subprocess.run(
            [*hw, "keys", "create", "--json"], env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        self.key = json.loads(done.stdout)
        self.port, self.floor_port = free_port(), free_port()
        self.logs = (out / "server.log", out / "floor.log")
        self.server = subprocess.Popen(
            [*hw, "server", "--port", str(self.port), "--workers", "2", "--log-level", "warning"],
            env=self.env,
            stdout=self.logs[0].open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.floor = subprocess.Popen(
            [str(PY), str(HERE / "floor_server.py"), str(self.floor_port)],
            env=self.env,
            stdout=self.logs[1].open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.host, self.floor_host = f"127.0.0.1:{self.port}", f"127.0.0.1:{self.floor_port}"
        self.client = Client(
            self.host, self.key["access_key"], self.key["secret_key"], scheme="http"
        )
        floor = Client(
            self.floor_host, self.key["access_key"], self.key["secret_key"], scheme="http"
        )
        wait_healthy(self.client, self.server, self.logs[0])
        wait_healthy(floor, self.floor, self.logs[1])
        floor.close()

        self.client.create_data_service({"id": FLOW[0]})
        self.client.create_dataflow(FLOW[0], {"id": FLOW[1]})
        code = CONNECTOR.format(partitions=PARTITIONS, rows=ROWS)
        component = Component(id=COMPONENT, partitioned=PartitionedDefinition(code=code))
        self.client.create_component(*FLOW, component)
        run = self.client.refresh_component(*FLOW, COMPONENT)
        ended = self.client.wait_for_run(run.id, timeout=120)
        assert ended.status == "succeeded" and ended.rows == PARTITIONS * ROWS, ended

    def settle(self) -> None:
        """Until the component has no queued or running run (after a mix phase)."""
        deadline = time.monotonic() + 120
        while any(not r.finished for r in self.client.list_component_runs(*FLOW, COMPONENT)):
            assert time.monotonic() < deadline, "a run did not finish"
            time.sleep(0.1)

    def run_statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.client.list_component_runs(*FLOW, COMPONENT, limit=1000):
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def close(self) -> None:
        self.client.close()
        for p in (self.server, self.floor):
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# -- /proc --------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# -- one measured phase --------------------------------------------------------------------


def percentile(values: list[int], q: float) -> float:
    """Nearest rank, in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))] / 1000


def measure(
    servers: Servers, pool: ProcessPoolExecutor, phase: str, clients: int, procs: int, rep: int
) -> dict[str, Any]:
    host = servers.floor_host if phase == "floor" else servers.host
    pid = servers.floor.pid if phase == "floor" else servers.server.pid
    t0 = time.time() + 1.0 + WARMUP_S  # 1 s for the client processes to start their threads
    t1 = t0 + DURATION_S
    per = [clients // procs + (i < clients % procs) for i in range(procs)]
    futures = [
        pool.submit(drive, host, servers.key, n, phase, t0, t1, rep * 100 + i)
        for i, n in enumerate(per)
    ]
    time.sleep(max(0.0, t0 - time.time()))  # the window's edges, not a synchronisation
    cpu0, busy0, load = proc_cpu(pid), machine_busy(), os.getloadavg()[0]
    rss: list[int] = []
    while (now := time.time()) < t1:
        rss.append(status_kib(pid, "VmRSS"))
        time.sleep(min(0.1, max(0.0, t1 - now)))
    cpu1, busy1 = proc_cpu(pid), machine_busy()
    results = [f.result() for f in futures]
    lat: dict[str, list[int]] = {}
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["lat"].items():
            lat.setdefault(k, []).extend(v)
            errors[k] = errors.get(k, 0) + r["errors"][k]
    clients_cpu = sum(r["cpu_s"] for r in results)
    server_cpu = cpu1 - cpu0
    found = {
        "phase": phase,
        "rep": rep,
        "clients": clients,
        "procs": procs,
        "duration_s": DURATION_S,
        "loadavg_before": load,
        "kinds": {
            k: {
                "count": len(v),
                "per_s": len(v) / DURATION_S,
                "p50_ms": percentile(v, 0.50),
                "p99_ms": percentile(v, 0.99),
                "errors": errors[k],
            }
            for k, v in lat.items()
        },
        "total_per_s": sum(len(v) for v in lat.values()) / DURATION_S,
        "errors": sum(errors.values()),
        "error_samples": [s for r in results for s in r["error_samples"]][:5],
        "busy_409": sum(r["busy"] for r in results),
        "accepted_triggers": sum(r["accepted"] for r in results),
        "server_cores": server_cpu / DURATION_S,
        "server_rss_max_mib": max(rss, default=0) / 1024,
        "server_hwm_mib": status_kib(pid, "VmHWM") / 1024,
        "clients_cores": clients_cpu / DURATION_S,
        "others_cores": max(0.0, busy1 - busy0 - server_cpu - clients_cpu) / DURATION_S,
    }
    if phase == "mix":
        servers.settle()
    return found


# -- the report ---------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    """The median, with the range when there are several runs."""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def summary(runs: list[dict[str, Any]], facts: dict[str, Any], statuses: dict[str, int]) -> str:
    reps = max(r["rep"] for r in runs) + 1
    first = runs[0]
    lines = [
        f"Clients: {first['clients']} ({first['procs']} processes of threads, one "
        f"`headwater.client.Client` each); {WARMUP_S:g} s warm-up, {DURATION_S:g} s measured; "
        f"{reps} rep(s), medians (range); data: {PARTITIONS} partitions x {ROWS} rows.",
        "",
        *machine.table(facts, {"project venv": "project venv"}),
        "",
        "| phase | kind | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for phase in MIXES:
        mine = [r for r in runs if r["phase"] == phase]
        kinds = [k for k, _ in MIXES[phase]]
        for k in kinds:
            lines.append(
                f"| {phase} | {k} | {spread([r['kinds'][k]['per_s'] for r in mine], '{:.1f}')} | "
                f"{spread([r['kinds'][k]['p50_ms'] for r in mine], '{:.1f}')} | "
                f"{spread([r['kinds'][k]['p99_ms'] for r in mine], '{:.1f}')} | "
                f"{sum(r['kinds'][k]['errors'] for r in mine)} |"
            )
        if len(kinds) > 1:
            lines.append(
                f"| {phase} | **total** | {spread([r['total_per_s'] for r in mine], '{:.1f}')} "
                f"| | | {sum(r['errors'] for r in mine)} |"
            )
    lines += [
        "",
        "| phase | server cores | server RSS max / peak (VmHWM) MiB | client cores | others' cores "
        "| load avg before |",
        "|---|---|---|---|---|---|",
    ]
    for phase in MIXES:
        mine = [r for r in runs if r["phase"] == phase]
        lines.append(
            f"| {phase} | {spread([r['server_cores'] for r in mine], '{:.2f}')} | "
            f"{spread([r['server_rss_max_mib'] for r in mine], '{:.0f}')} / "
            f"{max(r['server_hwm_mib'] for r in mine):.0f} | "
            f"{spread([r['clients_cores'] for r in mine], '{:.2f}')} | "
            f"{spread([r['others_cores'] for r in mine], '{:.2f}')} | "
            f"{spread([r['loadavg_before'] for r in mine], '{:.2f}')} |"
        )
    mix = [r for r in runs if r["phase"] == "mix"]
    lines += [
        "",
        f"Triggers in the mix windows: {sum(r['accepted_triggers'] for r in mix)} accepted "
        f"(202), {sum(r['busy_409'] for r in mix)} answered 409 (a run in progress: expected). "
        f"Every run of the component, by status: {statuses}.",
    ]
    samples = [s for r in runs for s in r["error_samples"]]
    if samples:
        lines += ["", "Error samples:", *(f"- {s}" for s in samples[:5])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or BENCH / "out" / f"server-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    facts = machine.facts(
        {"project venv": (str(PY), "fastapi starlette uvicorn httpx pydantic sqlalchemy")}
    )
    (out / "machine.json").write_text(json.dumps(facts, indent=2))
    runs = []
    with tempfile.TemporaryDirectory(prefix="hw-bench-server-") as tmp:
        servers = Servers(Path(tmp) / "home", out)
        try:
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.procs, mp_context=spawn) as pool:
                for rep in range(args.reps):
                    for phase in MIXES:
                        found = measure(servers, pool, phase, args.clients, args.procs, rep)
                        runs.append(found)
                        print(
                            f"load.py: rep {rep} {phase}: {found['total_per_s']:.0f} req/s, "
                            f"{found['errors']} errors, server {found['server_cores']:.2f} cores, "
                            f"clients {found['clients_cores']:.2f}, others "
                            f"{found['others_cores']:.2f}",
                            file=sys.stderr,
                        )
            statuses = servers.run_statuses()
        finally:
            servers.close()
    (out / "raw.json").write_text(json.dumps(runs, indent=2))
    text = summary(runs, facts, statuses)
    (out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

"""Serve the trivial connector with each engine in turn and drive it with 8 flyteidl clients;
then print and save the summary.

    .venv/bin/python bench/tasks/run_all.py [--reps 5] [--only ENGINE ...] [--layout 2x4]
                                            [--out DIR]

One run: start the engine's server (a fresh process), wait until it answers ListAgents, start
the load processes (`client.py`; `--layout PxT` = P processes of T client threads, 8 clients in
all), let them warm up for BENCH_TASKS_WARMUP_S (3), then measure for BENCH_TASKS_DURATION_S
(10): every pair (CreateTask then GetTask) that starts in the window counts. Meanwhile the
driver samples the server's process tree in /proc every 0.1 s (RSS) and reads its CPU, the
clients' CPU and the whole machine's at the window's edges, so the CPU the rest of the machine
used during the window (`others`) is known. Stop the server with SIGTERM.

Repetitions alternate the engines (H F, F H, H F, ...). The machine is shared, so before each
run the driver waits, up to BENCH_QUIET_WAIT_S (120), for a second in which the machine used
less than BENCH_NOISE_CORES (0.1) of a core; a run during which the rest of the machine used
more than that on average is marked `noisy` and run again, at most BENCH_NOISY_RETRIES (2)
more times. Every run goes to DIR/raw.jsonl (noisy ones marked); DIR/summary.md and stdout get
the medians of the clean runs (for a repetition with none, its least noisy run, flagged).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import engines
import summary

HERE = Path(__file__).parent
PYTHON = str(engines.HEADWATER_BIN / "python")
WARMUP_S = float(os.environ.get("BENCH_TASKS_WARMUP_S", "3"))
DURATION_S = float(os.environ.get("BENCH_TASKS_DURATION_S", "10"))
NOISE_CORES = float(os.environ.get("BENCH_NOISE_CORES", "0.1"))
QUIET_WAIT_S = float(os.environ.get("BENCH_QUIET_WAIT_S", "120"))
NOISY_RETRIES = int(os.environ.get("BENCH_NOISY_RETRIES", "2"))
READY_TIMEOUT_S = 60.0


def wait_quiet() -> float:
    """Wait for a second in which the machine is (nearly) idle; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < QUIET_WAIT_S:
        busy = engines.busy_cpu_s()
        time.sleep(1.0)
        if engines.busy_cpu_s() - busy < NOISE_CORES:
            break
    return round(time.monotonic() - started, 1)


def wait_ready(server: engines.Server) -> float:
    """Seconds from starting the server to its first ListAgents answer that lists our type."""
    import grpc
    from client import TASK_TYPE
    from flyteidl.admin import agent_pb2 as admin
    from flyteidl.service import agent_pb2_grpc

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.engine} server exited with {server.process.returncode}")
        with grpc.insecure_channel(server.target) as channel:
            stub = agent_pb2_grpc.AgentMetadataServiceStub(channel)
            try:
                agents = stub.ListAgents(admin.ListAgentsRequest(), timeout=2).agents
            except grpc.RpcError:
                time.sleep(0.1)
                continue
        types = {c.name for a in agents for c in a.supported_task_categories}
        if TASK_TYPE not in types:
            raise RuntimeError(f"{server.engine} serves {sorted(types)}, not {TASK_TYPE!r}")
        return time.monotonic() - server.started
    raise RuntimeError(f"{server.engine} server not ready after {READY_TIMEOUT_S:.0f} s")


class RssSampler(threading.Thread):
    """The largest sum of VmRSS over the server's process tree, sampled every 0.1 s."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak_kb, self.most_processes = root, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            pids = engines.tree(self.root)
            self.most_processes = max(self.most_processes, len(pids))
            self.peak_kb = max(self.peak_kb, sum(engines.status_kb(p, "VmRSS") for p in pids))


def snapshot(server_pids: list[int], client_pids: list[int]) -> dict[str, float]:
    return {
        "t": time.monotonic(),
        "server": engines.cpu_s(server_pids),
        "clients": engines.cpu_s(client_pids),
        "machine": engines.busy_cpu_s(),
    }


def percentile(ordered: list[int], p: float) -> float:
    """Nearest rank, in ms, of latencies in microseconds (sorted)."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1] / 1000


def spawn_clients(
    target: str, layout: tuple[int, int], mode: str, logs: Path, tag: str
) -> list[subprocess.Popen]:
    """Start the load processes and wait until each has made its checked pair."""
    procs, threads = layout
    clients = []
    for i in range(procs):
        clients.append(
            subprocess.Popen(
                [PYTHON, str(HERE / "client.py"), target, str(threads), mode],
                cwd=HERE,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=open(logs / f"{tag}_client{i}.log", "w"),  # noqa: SIM115
                text=True,
            )
        )
    for client in clients:
        line = client.stdout.readline()
        if line.strip() != "READY":
            for other in clients:
                other.kill()
            raise RuntimeError(f"a client did not get ready ({line!r}); see {logs}")
    return clients


def start_window(clients: list[subprocess.Popen], warmup_s: float, duration_s: float):
    """Tell the clients when to count (from now + warm-up, for duration); (t0, t1)."""
    t0 = time.monotonic() + warmup_s
    t1 = t0 + duration_s
    for client in clients:
        client.stdin.write(f"{t0} {t1}\n")
        client.stdin.flush()
    return t0, t1


def collect(clients: list[subprocess.Popen], logs: Path) -> list[dict]:
    """Each client's RESULT, once the window is over."""
    results = []
    for client in clients:
        out, _ = client.communicate(timeout=60)
        found = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        if client.returncode or not found:
            raise RuntimeError(f"a client failed (rc {client.returncode}); see {logs}")
        results.append(json.loads(found[-1][7:]))
    return results


def run_once(
    engine: str, layout: tuple[int, int], mode: str, rep: int, attempt: int, logs: Path
) -> dict:
    waited = wait_quiet()
    load = os.getloadavg()[0]
    tag = f"{engine}_{rep}_{attempt}"
    server = engines.start(engine, logs / f"{tag}_server.log")
    clients: list[subprocess.Popen] = []
    sampler = RssSampler(server.process.pid)
    run: dict = {"name": engine, "rep": rep, "attempt": attempt, "quiet_wait_s": waited}
    run["loadavg1_before"] = load
    try:
        run["ready_s"] = round(wait_ready(server), 2)
        sampler.start()
        clients = spawn_clients(server.target, layout, mode, logs, tag)
        t0, t1 = start_window(clients, WARMUP_S, DURATION_S)
        server_pids = server.tree()
        client_pids = [c.pid for c in clients]
        time.sleep(max(0.0, t0 - time.monotonic()))
        before = snapshot(server_pids, client_pids)
        time.sleep(max(0.0, t1 - time.monotonic()))
        after = snapshot(server_pids, client_pids)
        results = collect(clients, logs)
        server_pids = server.tree()
        run["server_processes"] = max(sampler.most_processes, len(server_pids))
        run["server_threads"] = sum(engines.threads(p) for p in server_pids)
        run["server_hwm_mb"] = round(
            sum(engines.status_kb(p, "VmHWM") for p in server_pids) / 1024, 1
        )
    except Exception as exc:
        run["result"] = None
        run["error"] = f"{type(exc).__name__}: {exc}"
        for client in clients:
            client.kill()
        return run
    finally:
        sampler.done.set()
        run["server_rc"] = server.stop()
    run.update(_measures(results, before, after, sampler.peak_kb))
    return run


def _measures(results: list[dict], before: dict, after: dict, peak_kb: int) -> dict:
    window = after["t"] - before["t"]
    server = after["server"] - before["server"]
    clients = after["clients"] - before["clients"]
    machine = after["machine"] - before["machine"]
    others = max(0.0, machine - server - clients)  # other tenants, the driver, kernel softirq
    pair = sorted(x for r in results for x in r["pair_us"])
    create = sorted(x for r in results for x in r["create_us"])
    get = sorted(p - c for r in results for p, c in zip(r["pair_us"], r["create_us"], strict=True))
    n = len(pair)
    return {
        "noisy": others > NOISE_CORES * window,
        "window_s": round(window, 3),
        "others_cpu_s": round(others, 2),
        "result": {
            "pairs": n,
            "pairs_per_s": round(n / window, 1),
            "pair_ms": {
                "p50": percentile(pair, 50),
                "p90": percentile(pair, 90),
                "p99": percentile(pair, 99),
                "max": pair[-1] / 1000 if pair else float("nan"),
                "mean": round(sum(pair) / n / 1000, 3) if n else float("nan"),
            },
            "create_ms_p50": percentile(create, 50),
            "get_ms_p50": percentile(get, 50),
            "create_ms_p99": percentile(create, 99),
            "get_ms_p99": percentile(get, 99),
            "errors": sum(r["errors"] for r in results),
            "error_samples": [s for r in results for s in r["error_samples"]][:3],
            "warmup_pairs": sum(r["warmup_pairs"] for r in results),
            "server_cpu_s": round(server, 2),
            "server_cores": round(server / window, 3),
            "server_cpu_us_per_pair": round(server / n * 1e6, 1) if n else None,
            "client_cpu_s": round(clients, 2),
            "client_cores": round(clients / window, 3),
            "client_cpu_us_per_pair": round(clients / n * 1e6, 1) if n else None,
            "machine_cores": round(machine / window, 3),
            "server_peak_rss_mb": round(peak_kb / 1024, 1),
        },
    }


def _show(run: dict) -> None:
    result = run.get("result")
    if not result:
        print(f"  rep {run['rep']} {run['name']:9} FAILED: {run.get('error')}", file=sys.stderr)
        return
    note = f"  noisy (others used {run['others_cpu_s']} CPU s), rerun" if run["noisy"] else ""
    print(
        f"  rep {run['rep']} {run['name']:9} {result['pairs_per_s']:8,.0f} pairs/s"
        f"  p50 {result['pair_ms']['p50']:6.2f} ms  p99 {result['pair_ms']['p99']:6.2f} ms"
        f"  errors {result['errors']}  server {result['server_cores']:.2f} cores"
        f"  clients {result['client_cores']:.2f} cores{note}",
        file=sys.stderr,
    )


def parse_layout(text: str) -> tuple[int, int]:
    procs, threads = (int(x) for x in text.lower().split("x"))
    if procs < 1 or threads < 1:
        raise argparse.ArgumentTypeError(f"layout {text!r}: PxT with P, T >= 1")
    return procs, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--only", nargs="*", choices=engines.ENGINES + engines.FLOORS + engines.EXTRA_FLOORS
        + engines.VARIANTS,
    )  # fmt: skip
    parser.add_argument(
        "--floors", action="store_true", help="also run the bare-gRPC floors (floor_server.py)"
    )
    parser.add_argument(
        "--client", choices=("sync", "aio"), default=summary.DEFAULT_CLIENT,
        help="the clients' gRPC API: sync stubs on threads, or grpc.aio coroutines",
    )  # fmt: skip
    parser.add_argument(
        "--layout", type=parse_layout, default=summary.DEFAULT_LAYOUT,
        help="PxT: P client processes of T threads each (default 2x4: 8 clients)",
    )  # fmt: skip
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / f"tasks-{stamp}")
    args = parser.parse_args()
    if args.only:
        every = engines.ENGINES + engines.FLOORS + engines.EXTRA_FLOORS + engines.VARIANTS
        chosen = [e for e in every if e in args.only]
    else:
        chosen = list(engines.ENGINES + (engines.FLOORS if args.floors else ()))
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    machine = summary.machine_facts(PYTHON, str(engines.FLYTEKIT_BIN / "python"))
    machine["layout"], machine["client"] = list(args.layout), args.client
    machine["argv"] = " ".join(sys.argv[1:])
    machine["warmup_s"], machine["duration_s"] = WARMUP_S, DURATION_S
    (args.out / "machine.json").write_text(json.dumps(machine, indent=2))
    raw = args.out / "raw.jsonl"
    for rep in range(1, args.reps + 1):
        order = chosen if rep % 2 else chosen[::-1]
        for engine in order:
            for attempt in range(1, NOISY_RETRIES + 2):
                run = run_once(engine, args.layout, args.client, rep, attempt, logs)
                with raw.open("a") as f:
                    f.write(json.dumps(run) + "\n")
                _show(run)
                if not run.get("noisy"):
                    break
    runs = [json.loads(line) for line in raw.read_text().splitlines()]
    text = summary.render(machine, runs, args.reps)
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""py-spy of one engine's server under the benchmark's load (not part of the timings).

    .venv/bin/python bench/tasks/profile_server.py ENGINE OUT_PREFIX [--native]

Starts the server and the clients as run_all.py does (after a quiet second), and once the
warm-up is over records the server's process for BENCH_TASKS_DURATION_S (10) with
`py-spy record --rate 200 --format raw` (with --native: the C frames of gRPC's Cython core and
the interpreter too). Writes OUT_PREFIX.raw and OUT_PREFIX.txt (bench/pyspy_summary.py of it:
each function's inclusive seconds on CPU) and prints the pairs/s seen while sampling (py-spy
slows the server a little).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import engines
import run_all
import summary

PYSPY = engines.BENCH / ".venvs" / "tools" / "bin" / "py-spy"
RATE = 200


def main() -> None:
    engine, prefix = sys.argv[1], Path(sys.argv[2])
    native = "--native" in sys.argv
    logs = prefix.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    tag = f"profile_{engine}{'_native' if native else ''}"
    run_all.wait_quiet()
    server = engines.start(engine, logs / f"{tag}_server.log")
    clients: list[subprocess.Popen] = []
    try:
        run_all.wait_ready(server)
        clients = run_all.spawn_clients(
            server.target, summary.DEFAULT_LAYOUT, summary.DEFAULT_CLIENT, logs, tag
        )
        t0, t1 = run_all.start_window(clients, run_all.WARMUP_S, run_all.DURATION_S)
        time.sleep(max(0.0, t0 - time.monotonic()))
        raw = prefix.with_suffix(".raw")
        command = [
            str(PYSPY), "record", "--pid", str(server.process.pid), "--rate", str(RATE),
            "--duration", str(int(run_all.DURATION_S)), "--format", "raw", "--output", str(raw),
        ]  # fmt: skip
        # --native needs to pause the process to unwind its C stack; plain sampling does not.
        command.append("--native" if native else "--nonblocking")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"py-spy failed: {done.stderr.strip()[-500:]}")
        results = run_all.collect(clients, logs)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
        server.stop()
    pairs = sum(len(r["pair_us"]) for r in results)
    text = subprocess.run(
        [sys.executable, str(engines.BENCH / "pyspy_summary.py"), str(raw), str(RATE), "40"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    head = (
        f"# {engine} server under load: {pairs / (t1 - t0):,.0f} pairs/s while sampled"
        f" ({'with' if native else 'without'} native frames)\n"
    )
    prefix.with_suffix(".txt").write_text(head + text)
    print(head + text)


if __name__ == "__main__":
    main()

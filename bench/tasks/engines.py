"""The two connector services, each started in its own process, and what /proc says about them.

    headwater  .venv/bin/headwater serve-connectors --connectors trivial_connector.py --port N
    flytekit   bench/.venvs/flytekit/bin/pyflyte serve connector --port N --prometheus_port M
               --modules trivial_connector   (run from bench/tasks, as the research did)

Both with their defaults otherwise. Standard library only (plus grpc for the readiness check,
from the project venv, which runs the driver).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
BENCH = HERE.parent
ROOT = BENCH.parent
HEADWATER_BIN = ROOT / ".venv" / "bin"
FLYTEKIT_BIN = BENCH / ".venvs" / "flytekit" / "bin"
CONNECTOR = HERE / "trivial_connector.py"
ENGINES = ("headwater", "flytekit")
# References, not contenders: Headwater on grpcio's engine, and floor_server.py's bare gRPC
# servers answering canned messages.
FLOORS = ("headwater_aio", "floor_aio", "floor_sync")
EXTRA_FLOORS = ("floor_aio-options",)  # the aio floor with Headwater's server options: --only
VARIANTS = ("hw_direct", "hw_hints", "hw_v1only")  # variant_server.py: experiments
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(engine: str, port: int) -> list[str]:
    """The server's command line (run with cwd=bench/tasks)."""
    if engine in ("headwater", "headwater_aio"):
        return [
            str(HEADWATER_BIN / "headwater"), "serve-connectors",
            "--connectors", str(CONNECTOR), "--port", str(port),
            # The compiled front end, named so a build without it fails rather than measuring
            # the other engine; headwater_aio is the grpc.aio engine.
            "--engine", "aio" if engine == "headwater_aio" else "native",
        ]  # fmt: skip
    if engine == "flytekit":
        return [
            str(FLYTEKIT_BIN / "pyflyte"), "serve", "connector",
            "--port", str(port), "--prometheus_port", str(free_port()),
            "--modules", CONNECTOR.stem,
        ]  # fmt: skip
    if engine in FLOORS + EXTRA_FLOORS:
        kind = engine.removeprefix("floor_")
        return [str(HEADWATER_BIN / "python"), str(HERE / "floor_server.py"), kind, str(port)]
    if engine in VARIANTS:
        variant = engine.removeprefix("hw_")
        return [str(HEADWATER_BIN / "python"), str(HERE / "variant_server.py"), variant, str(port)]
    known = ENGINES + FLOORS + EXTRA_FLOORS + VARIANTS
    raise ValueError(f"unknown engine {engine!r}; one of {known}")


@dataclass
class Server:
    engine: str
    port: int
    process: subprocess.Popen
    started: float  # time.monotonic() at Popen
    ready_s: float = 0.0  # from Popen to the first successful call

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def tree(self) -> list[int]:
        """The server's pid and its descendants' (from /proc)."""
        return tree(self.process.pid)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start(engine: str, log: Path) -> Server:
    port = free_port()
    out = log.open("w")
    process = subprocess.Popen(
        command(engine, port),
        cwd=HERE,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out.close()
    return Server(engine, port, process, time.monotonic())


def tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes, all their threads (0 for one gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def status_kb(pid: int, key: str) -> int:
    """A `/proc/PID/status` field in kB (VmRSS, VmHWM), 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all processes, all cores)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / TICK

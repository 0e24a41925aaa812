"""Layer 3, the security boundary: one worker process per run, inside bubblewrap.

The worker sees a minimal, read-only file system: /usr, the Python runtime, the virtualenv and the
headwater package directory (not the repository, which may hold catalogs and data), plus a
private tmpfs /tmp and fresh /proc and /dev. It runs as nobody (65534) in new user, pid, mount,
network, ipc, uts and cgroup namespaces, with no capabilities, no environment, no network unless
the settings grant it, and cannot create further user namespaces. The parent holds the wall-clock
deadline, kills the process group when it passes, and caps what it reads back.

The sandbox fails closed: `ensure_sandbox` probes it once per settings and raises
SandboxUnavailableError with the reason and the fix; nothing ever runs unsandboxed.

`run_worker` is a cold start: start, send the job, collect. A warm worker (see `warm`) is the
same process started ahead of time: `start_worker` with a preload list, `wait_ready`, and later
`exchange` for its one job.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from headwater.processor.errors import SandboxUnavailableError
from headwater.processor.protocol import BOOTSTRAP, LENGTH_BYTES, MAGIC, READY, WARM_BOOTSTRAP
from headwater.processor.settings import ProcessorSettings

MAX_STDERR_BYTES = 64 * 1024
_HEADER = len(MAGIC) + LENGTH_BYTES
_ENVIRONMENT = {
    "HOME": "/tmp",
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "MPLCONFIGDIR": "/tmp",
    "MPLBACKEND": "Agg",
    # Threaded BLAS reserves address space per thread and would trip the memory limit.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl")


@dataclass(frozen=True)
class WorkerOutcome:
    """What came back from one worker: its frame (if any) and how it ended."""

    started: bool  # the worker announced itself: the sandbox itself came up
    payload: bytes | None  # the result JSON, if a complete frame arrived
    exit_code: int | None  # bwrap's: the worker's code, 128 + signal, or -signal if we killed it
    timed_out: bool
    too_large: bool
    stderr: str  # the tail, for diagnosing crashes only
    elapsed_s: float


@dataclass
class WorkerProcess:
    """A started sandbox: bubblewrap's process and the read end of the worker's result pipe."""

    process: subprocess.Popen[bytes]
    result_fd: int
    stderr: bytearray  # what it wrote before its job (a warm worker's preload), kept for diagnosis


@dataclass(frozen=True)
class _Layout:
    python: str
    read_only: tuple[str, ...]  # bound at the same path inside the sandbox
    import_roots: tuple[str, ...]  # sys.path entries for the worker


@functools.cache
def _layout() -> _Layout:
    import headwater

    package = Path(headwater.__file__).resolve().parent
    roots = [str(package.parent)]
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths()[key]
        if os.path.isdir(path) and path not in roots:
            roots.append(path)
    binds = [os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix]
    binds.append(str(package))
    unique = tuple(dict.fromkeys(p for p in binds if not p.startswith("/usr/")))
    return _Layout(sys.executable, unique, tuple(roots))


def bwrap_argv(
    settings: ProcessorSettings, result_fd: int, preload: tuple[str, ...] | None = None
) -> list[str]:
    """The full command line: bubblewrap's policy, then the worker's interpreter.

    With `preload` (even empty), a warm worker that imports those modules before its job.
    """
    layout = _layout()
    argv = [
        settings.bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid", "65534",
        "--gid", "65534",
        "--cap-drop", "ALL",
        "--hostname", "sandbox",
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for top in ("lib", "lib64", "bin", "sbin"):
        host = f"/{top}"
        if os.path.islink(host):
            argv += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            argv += ["--ro-bind", host, host]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    argv += ["--size", str(settings.tmpfs_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    for path in layout.read_only:
        argv += ["--ro-bind", path, path]
    if settings.network:
        argv.append("--share-net")
        for path in _NETWORK_FILES:
            argv += ["--ro-bind-try", os.path.realpath(path), path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--chdir", "/tmp", "--clearenv"]
    for name, value in _ENVIRONMENT.items():
        argv += ["--setenv", name, value]
    argv += [layout.python, "-I", "-S", "-B", "-c"]
    if preload is None:
        argv += [BOOTSTRAP, str(result_fd)]
    else:
        argv += [WARM_BOOTSTRAP, str(result_fd), ",".join(preload)]
    return argv + list(layout.import_roots)


def run_worker(job: bytes, settings: ProcessorSettings) -> WorkerOutcome:
    """Start a sandboxed worker, send `job`, and collect its answer within the deadline."""
    return exchange(start_worker(settings), job, settings)


def start_worker(
    settings: ProcessorSettings, preload: tuple[str, ...] | None = None
) -> WorkerProcess:
    """Start bubblewrap with a worker inside; raise SandboxUnavailableError if it cannot run."""
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            bwrap_argv(settings, write_end, preload),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(write_end,),
            start_new_session=True,  # our own process group, so the kill reaches all of it
            env={},
        )
    except OSError as exc:
        os.close(read_end)
        raise SandboxUnavailableError(_missing_bwrap(settings, exc)) from None
    finally:
        os.close(write_end)
    return WorkerProcess(process, read_end, bytearray())


def wait_ready(worker: WorkerProcess, timeout_s: float) -> bool:
    """Wait until a warm worker has preloaded and waits for its job; False if it did not."""
    process = worker.process
    assert process.stderr is not None
    deadline = time.monotonic() + timeout_s
    expected = MAGIC + READY
    frame = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        selector.register(worker.result_fd, selectors.EVENT_READ)
        while len(frame) < len(expected):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ in selector.select(left):
                if key.fd == worker.result_fd:
                    chunk = os.read(key.fd, len(expected) - len(frame))
                    if not chunk:
                        return False
                    frame += chunk
                else:
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    worker.stderr += chunk
                    del worker.stderr[:-MAX_STDERR_BYTES]
    return frame == expected


def kill_worker(worker: WorkerProcess) -> None:
    """Kill a worker's sandbox; whoever waits on its pipes sees them close."""
    _kill(worker.process)


def stop_worker(worker: WorkerProcess) -> None:
    """Kill a worker that will not get (or finish) a job, reap it and close its pipes."""
    _kill(worker.process)
    worker.process.wait()
    close_pipes(worker)


def close_pipes(worker: WorkerProcess) -> None:
    """Close the parent's ends of a worker's pipes (the process is left alone)."""
    for file in (worker.process.stdin, worker.process.stderr):
        if file is not None and not file.closed:
            with contextlib.suppress(OSError):
                file.close()
    if worker.result_fd >= 0:
        with contextlib.suppress(OSError):
            os.close(worker.result_fd)
        worker.result_fd = -1


def exchange(worker: WorkerProcess, job: bytes, settings: ProcessorSettings) -> WorkerOutcome:
    """Send `job` to a started worker and collect its answer; the deadline starts now."""
    started_at = time.monotonic()
    deadline = started_at + settings.timeout_s
    process, read_end = worker.process, worker.result_fd
    assert process.stdin is not None and process.stderr is not None
    frame, stderr = bytearray(), worker.stderr
    timed_out = too_large = False
    limit = settings.max_output_bytes + _HEADER
    with selectors.DefaultSelector() as selector:
        os.set_blocking(process.stdin.fileno(), False)
        if job:
            selector.register(process.stdin, selectors.EVENT_WRITE)
        else:
            process.stdin.close()
        selector.register(process.stderr, selectors.EVENT_READ)
        selector.register(read_end, selectors.EVENT_READ)
        pending = memoryview(job)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(left):
                if key.fileobj is process.stdin:
                    pending = _feed(selector, process, pending)
                    continue
                fd = key.fd
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif fd == read_end:
                    frame += chunk
                    too_large = len(frame) > limit
                else:
                    stderr += chunk
                    del stderr[:-MAX_STDERR_BYTES]
            if too_large:
                break
    if timed_out or too_large:
        _kill(process)
    exit_code = _reap(process, deadline)
    close_pipes(worker)
    return WorkerOutcome(
        started=frame[: len(MAGIC)] == MAGIC,
        payload=None if too_large else _payload(frame),
        exit_code=exit_code,
        timed_out=timed_out,
        too_large=too_large,
        stderr=stderr.decode("utf-8", "replace"),
        elapsed_s=time.monotonic() - started_at,
    )


def _feed(
    selector: selectors.BaseSelector, process: subprocess.Popen[bytes], pending: memoryview
) -> memoryview:
    assert process.stdin is not None
    try:
        written = os.write(process.stdin.fileno(), pending[: 1 << 16])
    except BlockingIOError:
        return pending
    except BrokenPipeError:  # the worker died before reading its job; its exit says why
        written = len(pending)
    pending = pending[written:]
    if not pending:
        selector.unregister(process.stdin)
        process.stdin.close()
    return pending


def _payload(frame: bytearray) -> bytes | None:
    if len(frame) < _HEADER or frame[: len(MAGIC)] != MAGIC:
        return None
    size = int.from_bytes(frame[len(MAGIC) : _HEADER], "big")
    if len(frame) < _HEADER + size:
        return None
    return bytes(frame[_HEADER : _HEADER + size])


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the sandbox's init process, which takes down its whole pid namespace.

    Killing bwrap itself would orphan that init (to be reaped by the host's init, if it reaps
    at all); killing the init lets bwrap reap it and exit. The process-group kill is the
    fallback when bwrap does not exit promptly.
    """
    for child in _children(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    try:
        process.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(child) for child in file.read().split()]
    except (OSError, ValueError):
        return []


def _reap(process: subprocess.Popen[bytes], deadline: float) -> int:
    try:
        return process.wait(timeout=max(0.5, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:  # it closed its pipes but kept running
        _kill(process)
        return process.wait()


def _missing_bwrap(settings: ProcessorSettings, exc: OSError) -> str:
    return (
        f"the processor sandbox cannot start: bubblewrap '{settings.bwrap}' could not be run "
        f"({exc.strerror or exc}). Install it (Debian/Ubuntu: apt-get install bubblewrap) or "
        "set ProcessorSettings.bwrap to its path; statements never run unsandboxed"
    )


_probed: set[ProcessorSettings] = set()
_probe_lock = threading.Lock()


def ensure_sandbox(settings: ProcessorSettings) -> None:
    """Prove once per settings that the sandbox starts; raise SandboxUnavailableError if not."""
    if settings in _probed:
        return
    with _probe_lock:
        if settings in _probed:
            return
        from headwater.processor.probe import probe_sandbox

        probe_sandbox(settings)
        _probed.add(settings)


def forget(settings: ProcessorSettings) -> None:
    """Drop a cached probe result, after the sandbox failed to start despite it."""
    with _probe_lock:
        _probed.discard(settings)

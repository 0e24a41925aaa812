"""The sandboxed worker: runs one job (every execution of one run) and answers once.

Order matters, and is the point of this module:
1. announce the start on the private result fd; point fd 1 at stderr;
2. read the job; run the static gate again (never execute what the gate did not pass);
3. import what the statement imports (and nothing else: pandas alone costs ~250 ms);
4. apply rlimits, then install the seccomp filter: from here on no exec, fork or inet socket;
5. execute the statement, once per input row or once in bulk, on one event loop;
6. coerce the rows to JSON, write the length-prefixed frame, and `_exit` without teardown.

Everything after step 4 may be under the statement's control; the parent trusts none of it.

A warm worker (`serve_warm`) imports its preload list between steps 1 and 2, before any job
exists, and still runs exactly one job. So that a run sees the same limits warm or cold, the CPU
time and address space that preloaded modules took are added to the limits, except for the
modules the statement imports itself (a cold worker would have spent those too).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import resource
import signal
import sys
import types
from typing import Any, NamedTuple

from headwater.processor import gate
from headwater.processor.coerce import OutputError, Problems, coerce_rows
from headwater.processor.failure import CpuLimitExceeded, describe_exception
from headwater.processor.policy import Policy
from headwater.processor.protocol import DEBUG_PREVIEW_ROWS, MAGIC, READY, length_header
from headwater.processor.runtime import Log, make_sleep, needs_event_loop, run_coroutine
from headwater.processor.seccomp import install_filter

_MIB = 1024 * 1024


class Preloaded(NamedTuple):
    """What a warm worker imported before its job, and what each import cost."""

    costs: dict[str, tuple[float, int]]  # module -> (CPU seconds, bytes of address space)
    freeze_cpu_s: float  # the garbage collection after the imports
    loaded_asyncio: bool


COLD = Preloaded({}, 0.0, loaded_asyncio=False)


def main(result_fd: int) -> None:
    """Entry point inside the sandbox (see protocol.BOOTSTRAP)."""
    os.write(result_fd, MAGIC)
    os.dup2(2, 1)
    _answer(result_fd, json.loads(sys.stdin.buffer.read()), COLD)


def serve_warm(result_fd: int, preload: list[str]) -> None:
    """Entry point of a warm worker (see protocol.WARM_BOOTSTRAP): preload, wait, run one job."""
    os.write(result_fd, MAGIC)
    os.dup2(2, 1)
    preloaded = _preload(preload)
    os.write(result_fd, READY)
    job = json.loads(sys.stdin.buffer.read())
    os.write(result_fd, MAGIC)  # the job arrived; what follows is its answer
    _answer(result_fd, job, preloaded)


def _answer(result_fd: int, job: dict[str, Any], preloaded: Preloaded) -> None:
    payload = _probe(job) if job.get("probe") else _run(job, preloaded)
    _emit(result_fd, payload, int(job.get("max_output_bytes", 8 * _MIB)))
    os._exit(0)


def _preload(modules: list[str]) -> Preloaded:
    costs: dict[str, tuple[float, int]] = {}
    for name in modules:
        cpu, space = _cpu_seconds(), _address_space()
        # A failing import is reported by the statement's own import, at its line.
        with contextlib.suppress(Exception):
            __import__(name)
        costs[name] = (_cpu_seconds() - cpu, max(0, _address_space() - space))
    # Keep the preloaded objects out of the statement's garbage collections: a cold worker
    # would not have them to scan (pandas adds ~100k objects; a statement building millions of
    # rows would pay for them in every full collection, and hit the CPU limit sooner).
    cpu = _cpu_seconds()
    gc.collect()
    gc.freeze()
    return Preloaded(costs, _cpu_seconds() - cpu, loaded_asyncio="asyncio" in sys.modules)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _probe(job: dict[str, Any]) -> dict[str, Any]:
    """Prove the sandbox works: the filter installs, and we run as nobody."""
    install_filter(bytes.fromhex(job["seccomp"]), job["seccomp_nr"])
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {"status": "ok", "uid": os.getuid(), "seccomp": fields.get("Seccomp", "").strip()}


def _run(job: dict[str, Any], preloaded: Preloaded) -> dict[str, Any]:
    log = Log()
    try:
        gated = gate.check_statement(
            job["statement"], job["allowed_imports"], job["max_statement_bytes"]
        )
    except gate.StatementRejected as exc:
        return {"status": "rejected", "error": str(exc), "problems": exc.problems}
    asyncio_before = "asyncio" in sys.modules
    for module, fromlist in gated.imports:
        # A failing import is reported by the statement's own import, at its line.
        with contextlib.suppress(Exception):
            __import__(module, None, None, fromlist, 0)
    imported = {f"{module}.{name}" for module, names in gated.imports for name in names}
    imported.update(module for module, _ in gated.imports)
    spared = [
        cost
        for name, cost in preloaded.costs.items()
        if not any(m == name or m.startswith(name + ".") for m in imported)
    ]
    # asyncio decides the event loop; count it as loaded only if a cold worker would have it.
    asyncio_loaded = ("asyncio" in sys.modules and not asyncio_before) or (
        preloaded.loaded_asyncio and len(spared) < len(preloaded.costs)
    )
    use_asyncio = needs_event_loop((module for module, _ in gated.imports), asyncio_loaded)
    if use_asyncio:
        import asyncio  # noqa: F401  (before seccomp: it is a big import)
    _route_warnings(log)
    limits = job["limits"]
    spared_cpu_s = preloaded.freeze_cpu_s + sum(cpu for cpu, _ in spared)
    _apply_limits(limits, spared_cpu_s, sum(space for _, space in spared))
    install_filter(bytes.fromhex(job["seccomp"]), job["seccomp_nr"])
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail with EFBIG instead
    return _execute(job, gated.code, Policy(job["allowed_imports"], log), log, use_asyncio)


def _execute(
    job: dict[str, Any], code: types.CodeType, policy: Policy, log: Log, use_asyncio: bool
) -> dict[str, Any]:
    row_mode = job["processing"] == "row"
    max_rows = job["max_rows"]
    checkpoint = job["checkpoint"]
    shared_checkpoint = not isinstance(checkpoint, dict | list)
    checkpoint_json = None if shared_checkpoint else json.dumps(checkpoint)
    base = policy.globals(log=log, sleep=make_sleep(use_asyncio, job["wall_limit_s"]))
    rows: list[dict[str, Any]] = []
    sources: list[int] = []
    problems = Problems()
    current = [0, 0]  # the input row being run, output rows returned so far

    async def run_all() -> None:
        for index, batch in enumerate(job["batches"]):
            current[0] = index
            namespace = base.copy()
            namespace["INPUT_DATA"] = batch
            namespace["DATA_CHECKPOINT"] = (
                checkpoint if checkpoint_json is None else json.loads(checkpoint_json)
            )
            exec(code, namespace)
            value = await namespace[gate.ENTRY]()
            source = f" (from input row {index + 1})" if row_mode else ""
            produced = coerce_rows(
                value, first_row=current[1] + 1, problems=problems, source=source
            )
            current[1] += len(value) if type(value) is list else 0
            rows.extend(produced)
            sources.append(len(produced))
            if current[1] > max_rows:
                raise OutputError(
                    f"the statement returned more than {max_rows:,} rows, the limit per run; "
                    "return fewer rows (use the data checkpoint to continue in the next run)"
                )

    status, error, trace = "ok", None, None
    try:
        run_coroutine(run_all(), use_asyncio)
    except OutputError as exc:
        status, error = "failed", str(exc)
    except BaseException as exc:  # SystemExit, CpuLimitExceeded and MemoryError included
        source = f" (input row {current[0] + 1})" if row_mode else ""
        status = "failed"
        error, trace = describe_exception(
            exc,
            job["statement"].splitlines(),
            source=source,
            cpu_s=job["limits"]["cpu_s"],
            memory_mb=job["limits"]["memory_mb"],
        )
    if status == "ok" and problems.count:
        status, error = "failed", problems.summary()
    entries, dropped, first_error = log.snapshot()
    if status == "ok" and first_error is not None:
        status = "failed"
        error = f"the statement called log.error: {first_error}"
    if status != "ok":
        rows = rows[:DEBUG_PREVIEW_ROWS] if job["debug"] else []
    return {
        "status": status,
        "rows": rows,
        "row_sources": sources if row_mode else None,
        "logs": entries,
        "dropped_logs": dropped,
        "error": error,
        "traceback": trace,
        "problems": problems.items,
    }


def _apply_limits(limits: dict[str, int], spared_cpu_s: float, spared_bytes: int) -> None:
    """Set the run's rlimits; `spared_*` is what preloaded modules the statement does not use took.

    RLIMIT_CPU counts whole seconds; when the preload makes the CPU budget fractional, a CPU-time
    timer (ITIMER_PROF) ends the run at the exact budget, the soft limit rounds up behind it, and
    the kill (the hard limit, for a statement that swallows the exception) comes about a second
    after the budget, as in a cold worker.
    """
    cpu = limits["cpu_s"] + spared_cpu_s
    cpu_limit = math.ceil(cpu)
    memory = limits["memory_mb"] * _MIB + spared_bytes
    file_size = limits["tmpfs_mb"] * _MIB
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, max(cpu_limit, round(cpu + 1))))
    if cpu_limit > cpu:
        signal.signal(signal.SIGPROF, _on_cpu_limit)
        signal.setitimer(signal.ITIMER_PROF, max(0.001, cpu - _cpu_seconds()))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["max_processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["max_open_files"],) * 2)


def _on_cpu_limit(signum: int, frame: object) -> None:
    raise CpuLimitExceeded()


def _route_warnings(log: Log) -> None:
    """Library and statement warnings go to the run's log instead of the worker's stderr."""
    import warnings

    def show(message: Any, category: type[Warning], *_args: Any, **_kwargs: Any) -> None:
        log.warn(f"{category.__name__}: {message}")

    warnings.showwarning = show


def _emit(fd: int, payload: dict[str, Any], max_bytes: int) -> None:
    try:
        data = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
    except (ValueError, TypeError, RecursionError) as exc:
        data = _failure_frame(f"the result could not be encoded as JSON: {exc}")
    if len(data) > max_bytes:
        data = _failure_frame(
            f"output too large: the result is {len(data):,} bytes, over the limit of "
            f"{max_bytes:,} bytes; return fewer or smaller rows"
        )
    view = memoryview(length_header(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _failure_frame(error: str) -> bytes:
    return json.dumps({"status": "failed", "rows": [], "logs": [], "error": error}).encode()

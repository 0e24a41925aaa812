"""Warm workers: settings, one job per worker, stale workers, settings isolation, concurrency,
and that no sandbox process outlives `shutdown_warm_workers` or the interpreter.

Every run goes through the real bubblewrap sandbox. Waits are on conditions (the pool's ready
count, processes gone from /proc) with timeouts, never fixed sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from headwater.processor import (
    DEFAULT_ALLOWED_IMPORTS,
    ProcessorSettings,
    SandboxUnavailableError,
    run_statement,
    shutdown_warm_workers,
    warm,
)
from headwater.processor.errors import ProcessorConfigError

WARM = ProcessorSettings(timeout_s=5, cpu_s=2, warm_workers=1)
PANDAS = (
    "import pandas as pd\nframe = pd.DataFrame({'n': [1, 2]})\n"
    "return [{'n': int(frame['n'].sum())}]"
)


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        threading.Event().wait(0.02)
    return True


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process; None if it is gone or only a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[1]))


def descendants(root: int) -> set[int]:
    """Live processes below `root` (bubblewrap, its sandbox init, the worker)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat[1]
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def sandboxes(root: int) -> set[int]:
    """Live bubblewrap processes below `root` and everything below them. (Other children of
    the test process, such as the engine's forkserver started by an earlier test, are not
    this module's business.)"""
    found: set[int] = set()
    for pid in descendants(root):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name == "bwrap":
            found |= {pid} | descendants(pid)
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if _stat(pid) is not None}


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Each test ends with every warm worker stopped and no sandbox process left behind."""
    yield
    before = sandboxes(os.getpid())
    shutdown_warm_workers()
    # A killed sandbox init may outlive bubblewrap for a moment, reparented, while the kernel
    # tears down its pid namespace: wait for every process seen before the shutdown to go.
    assert wait_for(lambda: not alive(before) and not sandboxes(os.getpid())), (
        alive(before),
        sandboxes(os.getpid()),
    )


def ready_pool(settings: ProcessorSettings = WARM) -> warm.WarmPool:
    pool = warm.pool_for(settings)
    assert pool.wait_until_ready(timeout_s=30), "warm workers did not start"
    return pool


def run(statement: str = "return [{'n': 1}]", settings: ProcessorSettings = WARM) -> list:
    result = run_statement(statement, {"n": "int"}, processing="bulk", settings=settings)
    assert result.verdict == "ok", result.error
    return result.rows


# Settings ---------------------------------------------------------------------------------


def test_warm_workers_are_off_by_default_and_preload_pandas_and_numpy() -> None:
    settings = ProcessorSettings()
    assert settings.warm_workers == 0
    assert settings.preload == ("pandas", "numpy")
    assert ProcessorSettings(preload=["json"]).preload == ("json",)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, 1.5, True, "2", None])
def test_warm_workers_must_be_a_whole_number_from_zero(value: object) -> None:
    with pytest.raises(ProcessorConfigError, match=r"warm_workers must be a whole number >= 0"):
        ProcessorSettings(warm_workers=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["pandas", None, ("pandas", ""), ("os path",), (1,)])
def test_preload_must_be_module_names(value: object) -> None:
    with pytest.raises(ProcessorConfigError, match=r"preload"):
        ProcessorSettings(preload=value)  # type: ignore[arg-type]


def test_warm_workers_preload_only_allowed_modules() -> None:
    with pytest.raises(ProcessorConfigError, match=r"preload names 'os'.*allowed_imports"):
        ProcessorSettings(warm_workers=1, preload=("json", "os"))
    narrow = ProcessorSettings(allowed_imports=("json",), warm_workers=1, preload=("json",))
    assert narrow.preload == ("json",)
    # Cold runs never preload, so the default list does not clash with a narrow allow-list.
    assert ProcessorSettings(allowed_imports=("json",)).warm_workers == 0
    with pytest.raises(ProcessorConfigError, match=r"'pandas', 'numpy'"):
        ProcessorSettings(allowed_imports=("json",), warm_workers=2)


def test_shutdown_is_public() -> None:
    import headwater.processor as processor

    assert "shutdown_warm_workers" in processor.__all__
    assert processor.shutdown_warm_workers is warm.shutdown_warm_workers


# Lifecycle --------------------------------------------------------------------------------


def test_a_warm_worker_runs_one_job_and_is_replaced() -> None:
    assert run() == [{"n": 1}]  # the first run starts the pool, and runs cold
    pool = ready_pool()
    served, (first,) = pool.served, pool.pids()
    assert run(PANDAS) == [{"n": 3}]
    assert pool.served == served + 1
    assert wait_for(lambda: _stat(first) is None)  # the worker exited with its run
    pool = ready_pool()
    assert first not in pool.pids()
    assert run(PANDAS) == [{"n": 3}] and pool.served == served + 2


def test_shutdown_kills_ready_and_starting_workers() -> None:
    settings = dataclasses.replace(WARM, warm_workers=2)
    pool = ready_pool(settings)
    before = sandboxes(os.getpid())
    assert len(pool.pids()) == 2 and len(before) >= 4  # bwrap and its init, each
    run(settings=settings)  # takes one; a replacement is starting now
    shutdown_warm_workers()
    assert wait_for(lambda: not alive(before) and not sandboxes(os.getpid()))
    assert pool.pids() == [] and not pool.wait_until_ready(timeout_s=0.1)
    assert warm.pool_for(settings) is not pool  # a later run starts a new pool


def test_workers_are_killed_at_interpreter_exit(tmp_path: Path) -> None:
    script = (
        "import json, os\n"
        "from headwater.processor import ProcessorSettings, run_statement, warm\n"
        "settings = ProcessorSettings(warm_workers=2)\n"
        "run_statement('return []', {'n': 'int'}, settings=settings)\n"
        "pool = warm.pool_for(settings)\n"
        "assert pool.wait_until_ready(timeout_s=30)\n"
        "def below(pid):\n"
        "    tasks = f'/proc/{pid}/task'\n"
        "    kids = [open(f'{tasks}/{t}/children').read().split() for t in os.listdir(tasks)]\n"
        "    kids = [int(kid) for each in kids for kid in each]\n"
        "    return [(kid, below(kid)) for kid in kids]\n"
        "print(json.dumps(below(os.getpid())))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    tree = json.loads(done.stdout)  # [(bwrap, [(its init, [(the worker, [])])]), ...]
    assert len(tree) == 2
    sandboxes: set[int] = set()
    while tree:
        sandboxes.update(pid for pid, _ in tree)
        tree = [node for _, below in tree for node in below]
    assert len(sandboxes) == 6
    assert wait_for(lambda: not alive(sandboxes))


FORK_SCRIPT = """
import os
from headwater.processor import ProcessorSettings, run_statement, warm
settings = ProcessorSettings(warm_workers=1, timeout_s=5)
run_statement("return []", {"n": "int"}, settings=settings)
pool = warm.pool_for(settings)
assert pool.wait_until_ready(timeout_s=30)
hold, release = os.pipe()
child = os.fork()
if child == 0:
    forgotten = not warm._pools
    os.read(hold, 1)  # alive, with whatever it inherited, until the parent's run is over
    os._exit(0 if forgotten else 1)
result = run_statement("return [{'n': 1}]", {"n": "int"}, processing="bulk", settings=settings)
os.write(release, b"x")
print(result.verdict, pool.served, os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
"""


def test_a_forked_child_lets_go_of_the_parents_workers() -> None:
    # Had the child kept its copy of the worker's stdin, the worker would never see the end of
    # its job and the parent's run would time out.
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["ok", "1", "0"], done.stderr


def test_a_worker_that_died_while_waiting_is_replaced_and_the_run_starts_cold() -> None:
    pool = ready_pool()
    (stale,) = pool.pids()
    for pid in descendants(stale):
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: _stat(stale) is None)  # bubblewrap exited (not yet reaped)
    served = pool.served
    assert run(PANDAS) == [{"n": 3}]
    assert pool.served == served  # the stale worker did not serve it: a cold one did
    pool = ready_pool()
    assert stale not in pool.pids()
    assert run(PANDAS) == [{"n": 3}] and pool.served == served + 1


def test_a_worker_that_dies_after_being_taken_but_before_its_job_falls_back_to_cold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = ready_pool()
    worker = pool.take()
    assert worker is not None
    for pid in descendants(worker.process.pid):
        os.kill(pid, signal.SIGKILL)
    monkeypatch.setattr(pool, "take", lambda: worker)  # as if it died between take and send
    served = pool.served
    assert run() == [{"n": 1}]
    assert pool.served == served
    assert worker.process.returncode is not None and worker.result_fd == -1  # reaped, closed


def test_runs_with_other_settings_never_take_the_pools_workers() -> None:
    pool = ready_pool()
    (waiting,) = pool.pids()
    others = [
        dataclasses.replace(WARM, cpu_s=3),
        dataclasses.replace(WARM, network=True),
        dataclasses.replace(WARM, allowed_imports=(*DEFAULT_ALLOWED_IMPORTS, "csv")),
        dataclasses.replace(WARM, warm_workers=0),
    ]
    for settings in others:
        assert run(settings=settings) == [{"n": 1}]
    assert pool.pids() == [waiting] and pool.served == 0
    assert all(warm.pool_for(s) is not pool for s in others[:3])
    assert warm.pool_for(WARM) is pool


def test_a_network_grant_reaches_warm_workers_of_that_settings_only() -> None:
    statement = (
        "import httpx\ntry:\n    httpx.get('http://127.0.0.1:9/', timeout=1)\n"
        "except Exception as exc:\n    return [{'out': str(exc)}]\nreturn []"
    )
    granted = dataclasses.replace(WARM, network=True)
    for settings, expected in ((WARM, "[Errno 1]"), (granted, "[Errno 111]")):
        pool = ready_pool(settings)
        result = run_statement(statement, {"out": "string"}, processing="bulk", settings=settings)
        assert result.rows[0]["out"].startswith(expected), result
        assert pool.served == 1


def test_concurrent_runs_each_take_their_own_worker_or_start_cold() -> None:
    settings = dataclasses.replace(WARM, warm_workers=2)
    pool = ready_pool(settings)
    statement = "return [{'n': INPUT_DATA[0]['n'] * 2}]"

    def one(n: int) -> list:
        result = run_statement(statement, {"n": "int"}, [{"n": n}], settings=settings)
        assert result.verdict == "ok", result.error
        return result.rows

    with ThreadPoolExecutor(max_workers=6) as executor:
        answers = list(executor.map(one, range(12)))
    assert answers == [[{"n": 2 * n}] for n in range(12)]
    assert 2 <= pool.served <= 12
    assert pool.wait_until_ready(timeout_s=30) and len(pool.pids()) == 2


# Same behaviour warm or cold --------------------------------------------------------------


def test_the_deadline_starts_when_the_job_is_sent() -> None:
    settings = dataclasses.replace(WARM, timeout_s=1.0)
    pool = ready_pool(settings)
    threading.Event().wait(1.2)  # the subject: a worker that has waited longer than timeout_s
    assert run("await sleep(0.5)\nreturn [{'n': 1}]", settings) == [{"n": 1}]
    assert pool.served == 1


def test_the_preload_does_not_eat_into_the_statements_memory_limit() -> None:
    # pandas maps ~300 MB of address space; a statement that does not import it still gets
    # the whole limit, as in a cold worker.
    settings = dataclasses.replace(WARM, cpu_s=10, timeout_s=20, memory_mb=768)
    allocate = "x = [0] * (650 * 1024 ** 2 // 8)\nreturn [{'n': len(x) // 1024 ** 2}]"
    cold_settings = dataclasses.replace(settings, warm_workers=0)
    cold = run_statement(allocate, {"n": "int"}, processing="bulk", settings=cold_settings)
    pool = ready_pool(settings)
    warmed = run_statement(allocate, {"n": "int"}, processing="bulk", settings=settings)
    assert pool.served == 1
    assert (warmed.verdict, warmed.rows) == (cold.verdict, cold.rows) == ("ok", [{"n": 81}])
    pool = ready_pool(settings)
    too_much = run_statement(
        allocate.replace("650", "800"), {"n": "int"}, processing="bulk", settings=settings
    )
    assert pool.served == 2 and too_much.verdict == "failed"
    assert too_much.error and "memory limit of 768 MB" in too_much.error


def test_a_preload_that_fails_to_import_leaves_the_error_to_the_statement() -> None:
    allowed = (*DEFAULT_ALLOWED_IMPORTS, "no_such_module")
    settings = dataclasses.replace(
        WARM, allowed_imports=allowed, preload=("no_such_module", "json")
    )
    cold_settings = dataclasses.replace(settings, warm_workers=0)
    statement = "x = 1\nimport no_such_module\nreturn []"
    pool = ready_pool(settings)
    warmed = run_statement(statement, {"n": "int"}, settings=settings, processing="bulk")
    cold = run_statement(statement, {"n": "int"}, settings=cold_settings, processing="bulk")
    assert pool.served == 1
    assert warmed.verdict == cold.verdict == "failed"
    assert warmed.error == cold.error and "line 2" in (warmed.error or "")


@pytest.mark.parametrize("bwrap", ["/nonexistent/bwrap", "/bin/false"])
def test_warm_settings_still_fail_closed(bwrap: str) -> None:
    settings = dataclasses.replace(WARM, bwrap=bwrap)
    with pytest.raises(SandboxUnavailableError, match="sandbox cannot start"):
        run_statement("return []", {"n": "int"}, settings=settings)
    assert settings not in warm._pools  # refused before any pool was started

"""Warm workers: sandboxed workers started ahead of runs, each still used for one run only.

A cold run starts bubblewrap and Python and imports what the statement imports (pandas: about
300 ms) while the caller waits. With `ProcessorSettings.warm_workers = N`, a pool started on the
first run with those settings keeps N workers that have already started inside their own sandbox
and imported `settings.preload`, each blocked on reading its job. A run takes one, sends its job
and gets its answer as from a cold worker; a thread starts the replacement meanwhile.

Invariants:
- A worker runs one job, then exits; nothing is ever reused across runs.
- A pool serves one ProcessorSettings value (network grant, limits, allow-list, preload); a run
  with other settings never takes its workers.
- A run never waits for a worker to warm up and never fails because of a stale one: with none
  ready, or if the one taken died before it read the job, the run starts a cold worker.
- Workers die with this process: `shutdown_warm_workers` (also run at exit) kills and reaps them,
  a forked child drops the inherited pools without touching them, and bubblewrap's
  --die-with-parent covers a crash.
"""

from __future__ import annotations

import atexit
import collections
import os
import threading

from headwater.processor import sandbox
from headwater.processor.errors import SandboxUnavailableError
from headwater.processor.settings import ProcessorSettings

_READY_TIMEOUT_S = 60.0  # for a worker to start and import its preload list
_MAX_BACKOFF_S = 30.0  # between attempts when warm workers keep failing to start


class WarmPool:
    """Up to `settings.warm_workers` started workers for runs with exactly these settings."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.served = 0  # runs that a warm worker took (for tests and benchmarks)
        self._ready: collections.deque[sandbox.WorkerProcess] = collections.deque()
        self._starting: sandbox.WorkerProcess | None = None
        self._closed = False
        self._changed = threading.Condition()
        # bubblewrap's --die-with-parent follows the thread that started it: this thread starts
        # every worker of the pool and lives as long as the pool.
        self._filler = threading.Thread(
            target=self._fill, name="headwater-warm-workers", daemon=True
        )
        self._filler.start()

    def run(self, job: bytes) -> sandbox.WorkerOutcome | None:
        """Run `job` on a ready worker; None if none was ready or the one taken was stale."""
        worker = self.take()
        if worker is None:
            return None
        outcome = sandbox.exchange(worker, job, self.settings)
        if not outcome.started:  # it died (or hung) before reading the job: nothing ran
            return None
        with self._changed:
            self.served += 1
        return outcome

    def take(self) -> sandbox.WorkerProcess | None:
        """A ready worker, now this caller's alone; None if none is ready."""
        dead: list[sandbox.WorkerProcess] = []
        taken = None
        with self._changed:
            while self._ready and taken is None:
                worker = self._ready.popleft()
                if worker.process.poll() is None:
                    taken = worker
                else:
                    dead.append(worker)
            self._changed.notify_all()  # the filler starts the replacements
        for worker in dead:
            sandbox.stop_worker(worker)
        return taken

    def wait_until_ready(self, count: int | None = None, timeout_s: float = 30.0) -> bool:
        """Wait until `count` (default: all) workers are ready; False if that takes too long."""
        wanted = self.settings.warm_workers if count is None else count
        with self._changed:
            self._changed.wait_for(lambda: self._closed or len(self._ready) >= wanted, timeout_s)
            return not self._closed and len(self._ready) >= wanted

    def pids(self) -> list[int]:
        """bubblewrap's pid for each worker ready or starting (to check that none outlives us)."""
        with self._changed:
            workers = [*self._ready, *([self._starting] if self._starting else [])]
        return [worker.process.pid for worker in workers]

    def close(self) -> None:
        """Kill every worker of the pool, ready or starting, and stop its thread."""
        with self._changed:
            self._closed = True
            ready, starting = list(self._ready), self._starting
            self._ready.clear()
            self._changed.notify_all()
        if starting is not None:  # the filler, waiting for it, reaps it and closes its pipes
            sandbox.kill_worker(starting)
        for worker in ready:
            sandbox.stop_worker(worker)
        self._filler.join()

    def abandon(self) -> None:
        """In a forked child: let go of the parent's workers, closing only our copies of pipes."""
        self._closed = True
        for worker in [*self._ready, *([self._starting] if self._starting else [])]:
            sandbox.close_pipes(worker)
        self._ready.clear()

    def _fill(self) -> None:
        failures = 0
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._closed or len(self._ready) < self.settings.warm_workers
                )
                if self._closed:
                    return
            if self._start_one():
                failures = 0
                continue
            failures += 1
            backoff = min(_MAX_BACKOFF_S, 0.25 * 2**failures)
            with self._changed:
                if self._changed.wait_for(lambda: self._closed, backoff):
                    return

    def _start_one(self) -> bool:
        try:
            worker = sandbox.start_worker(self.settings, self.settings.preload)
        except (SandboxUnavailableError, OSError):  # runs start cold, and report it themselves
            return False
        with self._changed:
            closed = self._closed
            if not closed:
                self._starting = worker  # so that close() can kill it while we wait
        ready = not closed and sandbox.wait_ready(worker, _READY_TIMEOUT_S)
        with self._changed:
            self._starting = None
            if ready and not self._closed:
                self._ready.append(worker)
                self._changed.notify_all()
                return True
        sandbox.stop_worker(worker)
        return False


_pools: dict[ProcessorSettings, WarmPool] = {}
_pools_lock = threading.Lock()
_hooks_installed = False


def pool_for(settings: ProcessorSettings) -> WarmPool:
    """The pool of warm workers for `settings` in this process, started on first use."""
    global _hooks_installed
    with _pools_lock:
        pool = _pools.get(settings)
        if pool is None or pool.pid != os.getpid():
            if not _hooks_installed:
                atexit.register(shutdown_warm_workers)
                os.register_at_fork(after_in_child=_forget_after_fork)
                _hooks_installed = True
            pool = _pools[settings] = WarmPool(settings)
        return pool


def run_job(job: bytes, settings: ProcessorSettings) -> sandbox.WorkerOutcome:
    """Run `job` on a warm worker if the settings keep some and one is ready, else cold."""
    if settings.warm_workers:
        outcome = pool_for(settings).run(job)
        if outcome is not None:
            return outcome
    return sandbox.run_worker(job, settings)


def shutdown_warm_workers() -> None:
    """Stop every warm worker of this process: kill and reap them, and stop their threads.

    Runs at interpreter exit; call it earlier to free the workers (a later run with warm settings
    starts a new pool). Workers that runs have already taken finish their runs.

    Example:
        settings = ProcessorSettings(warm_workers=2)
        run_statement("return []", {"n": "int"}, settings=settings)
        shutdown_warm_workers()
    """
    with _pools_lock:
        pools = [pool for pool in _pools.values() if pool.pid == os.getpid()]
        _pools.clear()
    for pool in pools:
        pool.close()


def _forget_after_fork() -> None:
    global _pools_lock
    _pools_lock = threading.Lock()  # another thread may have held it at the fork
    for pool in _pools.values():
        pool.abandon()
    _pools.clear()

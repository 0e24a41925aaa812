"""A run's log: lines kept in memory for live followers and written to the catalog as they come,
with the run's credential masked before a line is kept anywhere."""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from collections.abc import Callable

from headwater.catalog.server_runs import LogRecord, ServerRuns
from headwater.secrets import scrub

LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}


class RunLog:
    """The log lines of one run.

    `add` may be called from any thread; `flush` (which writes to the catalog) only from the
    run's own thread at points where it holds no catalog transaction (a log record can be
    emitted inside one, and SQLite would then wait on itself).
    """

    def __init__(
        self, run_id: int, runs: ServerRuns, clock: Callable[[], datetime.datetime]
    ) -> None:
        self.run_id = run_id
        self.runs = runs
        self.clock = clock
        self.secret: str | None = None  # the run's credential, once known
        self._lines: list[LogRecord] = []
        self._flushed = 0
        self._ended = False
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def add(self, level: str, message: str) -> None:
        text = scrub(message, self.secret)
        with self._lock:
            self._lines.append(LogRecord(len(self._lines) + 1, self.clock(), level, text))
        self._wake()

    def info(self, message: str) -> None:
        self.add("info", message)

    def warning(self, message: str) -> None:
        self.add("warning", message)

    def error(self, message: str) -> None:
        self.add("error", message)

    def flush(self) -> None:
        with self._lock:
            pending = self._lines[self._flushed :]
            self._flushed = len(self._lines)
        self.runs.append_logs(self.run_id, pending)

    def end(self) -> None:
        """No more lines: followers get the rest and stop."""
        self.flush()
        with self._lock:
            self._ended = True
        self._wake()

    def since(self, after: int) -> tuple[list[LogRecord], bool]:
        """The lines after line `after`, and whether the log has ended."""
        with self._lock:
            return self._lines[after:], self._ended

    async def wait(self, after: int, timeout: float) -> None:
        """Return when there is a line after `after`, the log ended, or `timeout` passed."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if len(self._lines) > after or self._ended:
                return
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that follower's event loop has closed
                continue


class CapturedLogs(logging.Handler):
    """Routes Headwater's own log records to the log of the run whose thread emitted them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._logs: dict[int, RunLog] = {}
        self._lock = threading.Lock()

    def attach(self, log: RunLog) -> None:
        with self._lock:
            self._logs[threading.get_ident()] = log

    def detach(self) -> None:
        with self._lock:
            self._logs.pop(threading.get_ident(), None)

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            log = self._logs.get(threading.get_ident())
        if log is None:
            return
        level = LEVELS.get(record.levelno, "error")
        log.add(level, f"{record.name}: {record.getMessage()}")

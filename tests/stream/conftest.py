"""Fixtures for the stream suite: a clean declaration graph around each test, a sink that records
every commit in-process (and can hold a write until the test lets it go), a subject scripted by
a function, and stream.run() in a background thread for tests that watch a running stream.

Nothing here sleeps: threads meet on Events and Conditions, each wait bounded by WAIT so that a
broken product fails the test instead of hanging the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from headwater import stream
from headwater.stream import native

WAIT = 10.0  # seconds; a bound no passing test comes near


class RecordingSink:
    """A Sink (the protocol in headwater/stream/sinks.py) that keeps each write as
    (seq, rows); with `gate`, every write waits until the test sets it."""

    durable = False

    def __init__(self, name: str = "recorder", *, gate: threading.Event | None = None) -> None:
        self.name = name
        self.gate = gate
        self.entered = threading.Event()  # a write has started (and may be held at the gate)
        self.schema: pa.Schema | None = None
        self.stream: str | None = None
        self.closed = 0
        self.writes: list[tuple[int, list[dict[str, Any]]]] = []
        self._cond = threading.Condition()

    def open(self, schema: pa.Schema, *, stream: str, durable: bool) -> None:
        self.schema = schema
        self.stream = stream

    def write(self, seq: int, changes: pa.Table) -> None:
        self.entered.set()
        if self.gate is not None and not self.gate.wait(WAIT):
            raise TimeoutError("the test never opened the sink's gate")
        with self._cond:
            self.writes.append((seq, changes.to_pylist()))
            self._cond.notify_all()

    def close(self) -> None:
        self.closed += 1

    def rows(self) -> list[dict[str, Any]]:
        """Every change written, in order, with time and diff."""
        with self._cond:
            return [row for _, rows in self.writes for row in rows]

    def batches(self) -> list[list[tuple[Any, ...]]]:
        """Each write's changes without `time` (columns then diff), sorted: the order of
        changes inside one commit is not part of the contract."""
        with self._cond:
            return [
                sorted((tuple(v for k, v in row.items() if k != "time") for row in rows), key=repr)
                for _, rows in self.writes
            ]

    def wait_for_rows(self, count: int, timeout: float = WAIT) -> bool:
        """Wait until at least `count` changes were written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(len(rows) for _, rows in self.writes) >= count, timeout
            )


class ScriptedSubject(stream.ConnectorSubject):
    """A subject whose run() is `script(self)`; counts on_stop() calls."""

    def __init__(
        self,
        script: Callable[[ScriptedSubject], None],
        *,
        on_stop: Callable[[ScriptedSubject], None] | None = None,
    ) -> None:
        super().__init__()
        self.script = script
        self.stop_calls = 0
        self.stopped = threading.Event()
        self._on_stop = on_stop

    def run(self) -> None:
        self.script(self)

    def on_stop(self) -> None:
        self.stop_calls += 1
        self.stopped.set()
        if self._on_stop is not None:
            self._on_stop(self)


class BackgroundRun:
    """stream.run() in a daemon thread: the test watches the stream while it runs."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-stream-run", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            stream.run()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = WAIT) -> bool:
        """Wait for run() to return; False if it is still running after `timeout`."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


@pytest.fixture(autouse=True, params=["c", "python"])
def per_row_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every stream test runs twice: on the C hot paths and on their pure-Python twins, which
    must behave the same (where they differ on purpose, a test asks `native.enabled()`)."""
    if request.param == "c" and not native.AVAILABLE:
        pytest.skip("headwater.stream._native is not built (test_native_is_built fails)")
    monkeypatch.setenv(native.ENV, "1" if request.param == "c" else "0")
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_graph() -> Iterator[None]:
    # stream.read() declares into a module-level graph that run() takes; a test that fails
    # before run() must not leave its streams to the next test.
    stream._graph.tables.clear()
    yield
    stream._graph.tables.clear()


@pytest.fixture
def make_sink() -> Callable[..., RecordingSink]:
    """make_sink(table=None, name=..., gate=...): a RecordingSink, attached when given a table."""

    def make(table: stream.Table | None = None, **options: Any) -> RecordingSink:
        sink = RecordingSink(**options)
        if table is not None:
            table.sinks.append(sink)
        return sink

    return make


@pytest.fixture
def subject() -> type[ScriptedSubject]:
    return ScriptedSubject


@pytest.fixture
def run_in_background() -> type[BackgroundRun]:
    return BackgroundRun

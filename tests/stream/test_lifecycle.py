"""A stream's life: run() returning or close() ends it (the pending rows land); next() after
close() raises; an exception in run() calls on_stop() once, keeps what was committed, discards
the rest and is re-raised by stream.run() with a note naming the stream; several streams run
together and one failing stops the others."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from headwater import stream
from headwater.stream import StreamClosedError, StreamError
from headwater.stream.graph import CHUNK_ROWS
from headwater.stream.subject import SubjectError

WAIT = 10.0


class Numbered(stream.Schema):
    n: int


class Boom(Exception):
    pass


def numbers(sink: Any) -> list[list[int]]:
    return [[row["n"] for row in rows] for _, rows in sink.writes]


def test_returning_from_run_ends_the_stream_and_lands_the_rows_after_the_last_commit(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(n=1)
        s.commit()
        s.next(n=2)
        s.next(n=3)

    made = subject(script)
    table = stream.read(made, schema=Numbered, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()
    assert numbers(sink) == [[1], [2, 3]]
    assert made.stop_calls == 1
    assert sink.closed == 1


def test_close_ends_the_stream_and_later_calls_raise(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    refused: list[Exception] = []

    def script(s: Any) -> None:
        s.next(n=1)
        s.close()
        for call in (lambda: s.next(n=2), s.commit, lambda: s.delete(n=2), s.close):
            try:
                call()
            except StreamClosedError as error:
                refused.append(error)

    made = subject(script)
    table = stream.read(made, schema=Numbered, autocommit_duration_ms=None, name="ticks")
    sink = make_sink(table)
    stream.run()

    assert numbers(sink) == [[1]]
    assert len(refused) == 3  # next, commit and delete; closing twice is harmless
    assert "next() after the stream was closed" in str(refused[0])
    assert "ticks" in str(refused[0])
    assert made.stop_calls == 1


def test_an_error_escaping_run_after_close_is_reported(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(n=1)
        s.close()
        s.next(n=2)  # raises StreamClosedError out of run()

    made = subject(script)
    table = stream.read(made, schema=Numbered, autocommit_duration_ms=None)
    sink = make_sink(table)
    with pytest.raises((SubjectError, StreamClosedError)):
        stream.run()
    assert numbers(sink) == [[1]]
    assert made.stop_calls == 1


@pytest.mark.parametrize("uncommitted", [2, CHUNK_ROWS + 10])
def test_an_exception_in_run_keeps_the_committed_rows_and_is_reraised(
    subject: Any, make_sink: Callable[..., Any], uncommitted: int
) -> None:
    error = Boom("source went away")

    def script(s: Any) -> None:
        s.next(n=1)
        s.next(n=2)
        s.commit()
        for n in range(uncommitted):  # more than a chunk: some reach the consumer uncommitted
            s.next(n=100 + n)
        raise error

    made = subject(script)
    table = stream.read(made, schema=Numbered, autocommit_duration_ms=None, name="feed")
    sink = make_sink(table)
    with pytest.raises(Boom) as caught:
        stream.run()

    assert caught.value is error
    assert any("feed" in note for note in caught.value.__notes__)
    assert made.stop_calls == 1
    assert numbers(sink) == [[1, 2]]
    assert sink.closed == 1


def test_the_note_names_a_stream_read_without_a_name(subject: Any) -> None:
    class Feed(stream.ConnectorSubject):
        def run(self) -> None:
            raise Boom("no name")

    stream.read(Feed(), schema=Numbered)
    with pytest.raises(Boom) as caught:
        stream.run()
    assert any("Feed" in note for note in caught.value.__notes__)


def test_an_exception_in_on_stop_is_reraised(subject: Any, make_sink: Callable[..., Any]) -> None:
    def broken_stop(s: Any) -> None:
        raise Boom("cannot disconnect")

    def script(s: Any) -> None:
        s.next(n=1)
        s.commit()

    table = stream.read(subject(script, on_stop=broken_stop), schema=Numbered, name="feed")
    sink = make_sink(table)
    with pytest.raises(Boom, match="cannot disconnect"):
        stream.run()
    assert numbers(sink) == [[1]]


def test_two_streams_in_one_run_both_complete(subject: Any, make_sink: Callable[..., Any]) -> None:
    both_running = threading.Barrier(2, timeout=WAIT)  # proves they run at the same time

    def script(first: int) -> Callable[[Any], None]:
        def run(s: Any) -> None:
            s.next(n=first)
            both_running.wait()
            s.next(n=first + 1)

        return run

    one = stream.read(subject(script(10)), schema=Numbered, autocommit_duration_ms=None)
    two = stream.read(subject(script(20)), schema=Numbered, autocommit_duration_ms=None)
    sink_one, sink_two = make_sink(one), make_sink(two)
    stream.run()
    assert numbers(sink_one) == [[10, 11]]
    assert numbers(sink_two) == [[20, 21]]


@pytest.mark.parametrize("failing_first", [False, True])
def test_one_stream_failing_stops_the_other(
    subject: Any, make_sink: Callable[..., Any], failing_first: bool
) -> None:
    healthy_running = threading.Event()
    refused: list[Exception] = []

    def healthy(s: Any) -> None:
        s.next(n=1)
        s.commit()
        healthy_running.set()
        # runs until stopped from outside: on_stop() sets s.stopped, then next() must raise
        if not s.stopped.wait(WAIT):
            return
        try:
            s.next(n=2)
        except StreamClosedError as error:
            refused.append(error)

    def failing(s: Any) -> None:
        assert healthy_running.wait(WAIT)
        raise Boom("broker lost")

    healthy_subject, failing_subject = subject(healthy), subject(failing)
    order = [(failing_subject, "bad"), (healthy_subject, "good")]
    if not failing_first:
        order.reverse()
    sinks = {}
    for made, name in order:
        table = stream.read(made, schema=Numbered, autocommit_duration_ms=None, name=name)
        sinks[name] = make_sink(table)

    with pytest.raises(Boom, match="broker lost") as caught:
        stream.run()
    assert any("bad" in note for note in caught.value.__notes__)
    assert healthy_subject.stop_calls == 1
    assert failing_subject.stop_calls == 1
    assert len(refused) == 1
    assert numbers(sinks["good"]) == [[1]]
    assert sinks["good"].closed == sinks["bad"].closed == 1


class BrokenSink:
    name = "broken"
    durable = False

    def open(self, schema: Any, *, stream: str, durable: bool) -> None:
        pass

    def write(self, seq: int, changes: Any) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


def test_a_failing_sink_stops_the_subject(subject: Any) -> None:
    released = threading.Event()

    def script(s: Any) -> None:
        s.next(n=1)
        s.commit()
        # a subject that waits on its source until on_stop() tells it to finish
        released.wait(WAIT)

    made = subject(script, on_stop=lambda s: released.set())
    table = stream.read(made, schema=Numbered, autocommit_duration_ms=None)
    table.sinks.append(BrokenSink())
    with pytest.raises(OSError, match="disk full"):
        stream.run()
    assert made.stop_calls == 1


def test_run_with_nothing_read_raises() -> None:
    with pytest.raises(StreamError, match="nothing to run"):
        stream.run()


def test_run_takes_the_streams_it_ran(subject: Any, make_sink: Callable[..., Any]) -> None:
    table = stream.read(subject(lambda s: s.next(n=1)), schema=Numbered)
    sink = make_sink(table)
    stream.run()
    assert numbers(sink) == [[1]]
    with pytest.raises(StreamError, match="nothing to run"):
        stream.run()


def test_next_outside_a_stream_raises(subject: Any) -> None:
    loose = subject(lambda s: None)
    with pytest.raises(SubjectError, match=r"stream.read\(subject"):
        loose.next(n=1)
    with pytest.raises(SubjectError):
        loose.commit()


class Keyed(stream.Schema):
    key: int = stream.column_definition(primary_key=True)


class SlowSink:
    """Takes a while per write (a remote system), and notes any write after close()."""

    durable = False
    name = "slow"

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.closed = False
        self.written_after_close = False

    def open(self, schema: Any, *, stream: str, durable: bool) -> None:
        pass

    def write(self, seq: int, changes: Any) -> None:
        time.sleep(0.1)  # the slowness under test, not a wait for anything
        self.written_after_close |= self.closed
        self.keys += changes.column("key").to_pylist()

    def close(self) -> None:
        self.closed = True


def test_ctrl_c_lets_committed_batches_land_before_the_sinks_close(subject: Any) -> None:
    def script(s: Any) -> None:
        for key in range(3):
            s.next(key=key)
            s.commit()
        _thread.interrupt_main()  # Ctrl-C, while the sink is still writing
        s.stopped.wait(WAIT)  # stopping calls on_stop(), which ends this run()

    sink = SlowSink()
    table = stream.read(subject(script), schema=Keyed, autocommit_duration_ms=None)
    table.sinks.append(sink)
    with pytest.raises(KeyboardInterrupt):
        stream.run()
    assert sink.keys == [0, 1, 2]
    assert sink.closed and not sink.written_after_close


def test_close_inside_a_running_run_calls_on_stop(subject: Any, make_sink: Any, caplog) -> None:
    def script(s: Any) -> None:
        s.next(key=1)
        s.close()  # the end of the stream, say an end message from a broker
        s.stopped.wait(WAIT)  # a client loop that on_stop() disconnects

    made = subject(script)
    sink = make_sink(stream.read(made, schema=Keyed))
    stream.run()
    assert made.stop_calls == 1
    assert [r["key"] for r in sink.rows()] == [1]
    assert "did not return" not in caplog.text

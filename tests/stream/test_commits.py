"""Commits and flow: the rows between two commit() calls land in one sink write (one seq, one
even time, times strictly increasing); the autocommit timer closes batches of a subject that
never commits; max_backlog_size makes next() block while the consumer is behind.

No test sleeps to synchronise: subjects and sinks meet on Events. Where a test must show that
something does *not* happen, it gives it a bounded window (an Event wait expected to time out).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest

from headwater import stream
from headwater.stream.graph import CHUNK_ROWS

WAIT = 10.0
QUIET = 0.3  # a window in which something must not happen (it would take milliseconds)


class Numbered(stream.Schema):
    n: int


def test_the_rows_between_two_commits_land_in_one_write(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    sizes = [5, 2 * CHUNK_ROWS + 100, 1]  # the middle batch spans several hand-over chunks

    def script(s: Any) -> None:
        n = 0
        for size in sizes:
            for _ in range(size):
                s.next(n=n)
                n += 1
            s.commit()
            s.commit()  # an empty commit: no write, no seq

    table = stream.read(subject(script), schema=Numbered, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()

    assert [seq for seq, _ in sink.writes] == [1, 2, 3]
    assert [len(rows) for _, rows in sink.writes] == sizes
    assert [row["n"] for row in sink.rows()] == list(range(sum(sizes)))
    times = []
    for _, rows in sink.writes:
        (at,) = {row["time"] for row in rows}  # one time per commit
        times.append(at)
    assert all(at % 2 == 0 for at in times)
    assert times == sorted(set(times))


def test_times_are_even_and_strictly_increasing_when_commits_come_faster_than_a_millisecond(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        for n in range(200):
            s.next(n=n)
            s.commit()

    table = stream.read(subject(script), schema=Numbered, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()

    times = [rows[0]["time"] for _, rows in sink.writes]
    assert len(times) == 200
    assert all(at % 2 == 0 for at in times)
    assert all(later > earlier for earlier, later in itertools.pairwise(times))


def test_without_autocommit_only_commit_and_the_end_of_run_close_batches(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    landed_before_commit: list[bool] = []

    def script(s: Any) -> None:
        s.next(n=1)
        s.next(n=2)
        # quiet for a while: an autocommit (or an idle cut) would land the rows now
        landed_before_commit.append(sink.wait_for_rows(1, timeout=QUIET))
        s.commit()
        s.next(n=3)
        landed_before_commit.append(sink.wait_for_rows(3, timeout=QUIET))
        # returning ends the stream: the end of run() closes the last batch

    table = stream.read(subject(script), schema=Numbered, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()

    assert landed_before_commit == [False, False]
    assert sink.batches() == [[(1, 1), (2, 1)], [(3, 1)]]


@pytest.mark.parametrize("autocommit_ms", [20, 1500])
def test_autocommit_lands_a_trickling_row_without_a_commit(
    subject: Any, make_sink: Callable[..., Any], autocommit_ms: int
) -> None:
    # With 1500 ms (the default) the row still lands well within the wait below: Headwater
    # cuts the batch as soon as the subject goes quiet.
    landed: list[bool] = []

    def script(s: Any) -> None:
        for n in range(3):
            s.next(n=n)
            landed.append(sink.wait_for_rows(n + 1, timeout=1.0 if autocommit_ms > 1000 else WAIT))

    table = stream.read(subject(script), schema=Numbered, autocommit_duration_ms=autocommit_ms)
    sink = make_sink(table)
    stream.run()

    assert landed == [True, True, True]
    assert sink.batches() == [[(0, 1)], [(1, 1)], [(2, 1)]]  # one write per trickled row


@pytest.mark.parametrize("rows", [CHUNK_ROWS - 1, CHUNK_ROWS + 1, 3 * CHUNK_ROWS + 5])
def test_autocommit_lands_rows_across_hand_over_chunks(
    subject: Any, make_sink: Callable[..., Any], rows: int
) -> None:
    landed: list[bool] = []

    def script(s: Any) -> None:
        for n in range(rows):
            s.next(n=n)
        landed.append(sink.wait_for_rows(rows))

    table = stream.read(subject(script), schema=Numbered, autocommit_duration_ms=20)
    sink = make_sink(table)
    stream.run()
    assert landed == [True]
    assert [row["n"] for row in sink.rows()] == list(range(rows))


def test_autocommit_lands_a_whole_chunk_when_the_subject_goes_quiet(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    landed: list[bool] = []

    def script(s: Any) -> None:
        for n in range(CHUNK_ROWS):
            s.next(n=n)
        landed.append(sink.wait_for_rows(CHUNK_ROWS, timeout=1.0))

    table = stream.read(subject(script), schema=Numbered, autocommit_duration_ms=20)
    sink = make_sink(table)
    stream.run()
    assert landed == [True]


def _backpressure_bound(max_backlog: int) -> int:
    """The most next() calls that return while the consumer takes nothing (derived from
    headwater/stream/buffer.py): rows reach the Backlog as chunks of CHUNK_ROWS, and
    Backlog.put admits a chunk into an empty backlog whatever its size, otherwise only while
    it fits in max_backlog_size; the next CHUNK_ROWS - 1 rows wait in the RowBuffer, and the
    call that completes a chunk blocks in put()."""
    chunks = max(1, max_backlog // CHUNK_ROWS)
    return chunks * CHUNK_ROWS + CHUNK_ROWS - 1


@pytest.mark.parametrize("max_backlog", [2_000, 20_000])
def test_backpressure_blocks_next_while_the_sink_holds_a_commit(
    subject: Any,
    make_sink: Callable[..., Any],
    run_in_background: Any,
    max_backlog: int,
) -> None:
    bound = _backpressure_bound(max_backlog)
    total = bound + 10_000
    pushed = [0]
    finished = threading.Event()

    def script(s: Any) -> None:
        s.next(n=-1)
        s.commit()  # the sink holds this commit: the consumer stops taking rows
        for n in range(total):
            s.next(n=n)
            pushed[0] = n + 1
        s.commit()
        finished.set()

    gate = threading.Event()
    table = stream.read(
        subject(script),
        schema=Numbered,
        autocommit_duration_ms=None,
        max_backlog_size=max_backlog,
    )
    sink = make_sink(table, gate=gate)
    running = run_in_background()
    try:
        assert sink.entered.wait(WAIT)
        # Unchecked, the producer would push every row in a few tens of milliseconds.
        assert not finished.wait(QUIET), "next() never blocked"
        assert pushed[0] <= bound
    finally:
        gate.set()
    assert running.join()
    assert running.error is None
    assert finished.is_set()
    assert [len(rows) for _, rows in sink.writes] == [1, total]
    assert [row["n"] for row in sink.rows()] == [-1, *range(total)]


def test_max_backlog_size_bounds_the_rows_waiting_for_the_consumer(
    subject: Any, make_sink: Callable[..., Any], run_in_background: Any
) -> None:
    max_backlog = 2_000
    pushed = [0]
    finished = threading.Event()

    def script(s: Any) -> None:
        s.next(n=-1)
        s.commit()
        for n in range(50_000):
            s.next(n=n)
            pushed[0] = n + 1
        s.commit()
        finished.set()

    gate = threading.Event()
    table = stream.read(
        subject(script), schema=Numbered, autocommit_duration_ms=None, max_backlog_size=max_backlog
    )
    sink = make_sink(table, gate=gate)
    running = run_in_background()
    try:
        assert sink.entered.wait(WAIT)
        assert not finished.wait(QUIET)
        waiting = pushed[0]
    finally:
        gate.set()
    assert running.join()
    # At most max_backlog rows wait in the backlog, plus the chunk being filled (chunks are
    # half the bound): the producer blocks inside its 3,000th next() here.
    assert waiting <= max_backlog + max_backlog // 2 - 1
    assert waiting >= max_backlog  # and it did get that far: the bound is not far too tight

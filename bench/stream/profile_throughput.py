"""Where Headwater's throughput run spends its time: the subject, next(), the consumer.

    .venv/bin/python bench/stream/profile_throughput.py pk     # or: nopk

Three measurements of the same 1,000,000-row subject as bench_throughput.py, in one process:

1. `subject loop, no-op next()`: the subject's own Python (the f-string, the keyword call, the
   commit test) with `next` and `commit` doing nothing. Every engine pays this much.
2. `next() alone, nobody consuming`: the subject pushing into a Headwater RowBuffer whose
   backlog is unbounded and never read: the producer's full cost, with `_take` (C buffers ->
   Arrow batch, every 8,192 rows and at each commit) timed on its own.
3. `stream.run()`: the real thing, with the CSV sink, and the CPU time (`time.thread_time`)
   of each of its two threads and of the stages: the producer's `_take`, the consumer's
   `KeyedState.apply` (pk only), `_stamp` and `CsvSink.write`; and the consumer's wall time
   waiting in `Backlog.get`.

Stages are timed by wrapping Headwater's internal functions (profiling only, Headwater is
unchanged); if Headwater renames them the script says which.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import engines

ROWS = int(os.environ.get("BENCH_STREAM_ROWS", "1000000"))
COMMIT_EVERY = 10_000

spent: defaultdict[str, float] = defaultdict(float)
calls: defaultdict[str, int] = defaultdict(int)


def timed(owner: Any, attribute: str, label: str, clock: Callable[[], float]) -> None:
    """Replace owner.attribute by a wrapper adding each call's duration to spent[label]."""
    original: Callable[..., Any] = getattr(owner, attribute)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += clock() - started
            calls[label] += 1

    setattr(owner, attribute, wrapper)


def push(next_row: Callable[..., None], commit: Callable[[], None]) -> None:
    """The subject's loop of bench_throughput.py."""
    for i in range(ROWS):
        next_row(key=i, name=f"name_{i}", value=i * 0.5)
        if (i + 1) % COMMIT_EVERY == 0:
            commit()
    commit()


def main(keyed: str) -> None:
    if keyed not in ("pk", "nopk"):
        raise SystemExit(f"unknown variant {keyed!r}; use pk or nopk")
    api = engines.load("headwater")
    try:
        from headwater.stream import buffer, graph, sinks, state
    except ImportError as exc:
        raise SystemExit(f"Headwater's stream internals moved: {exc}") from None
    schema = engines.rows_schema(api, keyed == "pk")
    wall = time.perf_counter
    print(f"# Headwater, {ROWS:,} rows, {keyed}: seconds")

    class Noop:
        def next(self, **values: Any) -> None:
            pass

        def commit(self) -> None:
            pass

    started = wall()
    push(Noop().next, Noop().commit)
    print(f"{'1. subject loop, no-op next()':52} {wall() - started:7.3f}")

    class Detached(api.ConnectorSubject):
        def run(self) -> None:
            pass

    take = buffer.RowBuffer._take
    timed(buffer.RowBuffer, "_take", "_take", wall)
    subject = Detached()
    subject._buffer = buffer.RowBuffer(
        schema.columns(),
        schema.primary_key(),
        buffer.Backlog(None),
        subject="detached",
        on_bad_row="raise",
        chunk_rows=graph.CHUNK_ROWS,
    )
    started = wall()
    push(subject._buffer.next or subject.next, subject.commit)  # C's next, as stream.run gives
    print(f"{'2. next() alone, nobody consuming':52} {wall() - started:7.3f}")
    print(f"{'   of which _take (buffers -> Arrow), ' + str(calls['_take']) + ' calls':52}", end="")
    print(f" {spent['_take']:7.3f}")
    del subject
    buffer.RowBuffer._take = take
    spent.clear()
    calls.clear()

    cpu: dict[str, float] = {}
    for role in ("_produce", "_consume"):
        original = getattr(graph.StreamRunner, role)

        def on_cpu(self: Any, _original: Any = original, _role: str = role) -> None:
            started = time.thread_time()
            try:
                _original(self)
            finally:
                cpu[_role] = time.thread_time() - started

        setattr(graph.StreamRunner, role, on_cpu)
    # CPU of the calling thread: with two threads sharing the GIL, wall time would also count
    # the waits for it.
    cpu_now = time.thread_time
    timed(buffer.Backlog, "get", "consumer: Backlog.get (waiting), wall", wall)
    timed(state.KeyedState, "apply", "consumer: KeyedState.apply, CPU", cpu_now)
    timed(graph, "_stamp", "consumer: _stamp, CPU", cpu_now)
    timed(sinks.CsvSink, "write", "consumer: CsvSink.write, CPU", cpu_now)
    timed(buffer.RowBuffer, "_take", "producer: _take (buffers -> Arrow), CPU", cpu_now)

    class Counting(api.ConnectorSubject):
        def run(self) -> None:
            push(self.next, self.commit)

    work = engines.work_dir(f"profile_{keyed}")
    table = api.read(Counting(), schema=schema, autocommit_duration_ms=1500)
    api.write_csv(table, work / "out.csv")
    started = wall()
    api.run()
    print(f"{'3. stream.run()':52} {wall() - started:7.3f}")
    engines.cleanup(work)
    print(f"{'   CPU of the subject thread (_produce)':52} {cpu['_produce']:7.3f}")
    print(f"{'   CPU of the consumer thread (_consume)':52} {cpu['_consume']:7.3f}")
    for label, seconds in spent.items():
        stage, _, clock = label.rpartition(", ")
        shown = f"   {stage} ({calls[label]} calls), {clock}"
        print(f"{shown:52} {seconds:7.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])

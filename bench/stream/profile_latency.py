"""Where a trickled row's latency goes in Headwater: the commit path, stage by stage.

    .venv/bin/python bench/stream/profile_latency.py commit    # commit() after every row
    .venv/bin/python bench/stream/profile_latency.py timer     # autocommit_duration_ms=10
    .venv/bin/python bench/stream/profile_latency.py timer-capped

    .venv/bin/python bench/stream/profile_latency.py state      # KeyedState.apply alone

`timer-capped` is an experiment, not a measurement of Headwater as shipped: the consumer's
`Backlog.get` timeout is capped at 1 ms, as if `next()`'s nudge woke it up. It shows how much
of timer mode's latency is the consumer sleeping through that nudge.

The same trickle as bench_latency.py (one row every 10 ms, 300 rows by default), without the
poller: each stage of Headwater's path is wrapped with a timer (profiling only, Headwater is
unchanged), and the send time of each row is compared with the moment its CSV write returned
(`in-process visible`). Prints the median and p90 of each stage in microseconds, over the rows
after the warm-up:

* `next -> consumer has it`: from `next()` until the consumer's `Backlog.get` returns the
  batch holding the row (the hand-over, and in timer mode the wait for the autocommit cut);
* `producer: _take`: the producer's share of a commit (lists -> Arrow batch, ticket, put);
* `consumer: _commit`: the whole consumer side of one commit, and within it the keyed state
  (`KeyedState.apply`), the time stamp (`_stamp`) and the CSV write with its flush.

`state` calls `KeyedState.apply` (the upsert step of a keyed stream) directly, on 1,000
one-row commits with new keys, as the trickle makes them, and prints its time per call and a
cProfile of its insides by own time.

Internal names are looked up at run time; if Headwater renames them the script says which.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import engines

ROWS = int(os.environ.get("BENCH_STREAM_TRICKLE_ROWS", "300"))
INTERVAL_S = float(os.environ.get("BENCH_STREAM_INTERVAL_MS", "10")) / 1000
WARM_UP = 20

spent: defaultdict[str, list[float]] = defaultdict(list)
sent: dict[int, float] = {}
handed: dict[int, float] = {}
visible: dict[int, float] = {}


def timed(owner: Any, attribute: str, label: str) -> None:
    """Replace owner.attribute by a wrapper that records each call's duration under label."""
    original: Callable[..., Any] = getattr(owner, attribute)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label].append(time.perf_counter() - started)

    setattr(owner, attribute, wrapper)


def instrument(capped: bool) -> None:
    try:
        from headwater.stream import buffer, graph, sinks, state
    except ImportError as exc:
        raise SystemExit(f"Headwater's stream internals moved: {exc}") from None
    get = buffer.Backlog.get

    def get_noting(self: Any, timeout: float | None) -> Any:
        if capped:  # the experiment: never sleep more than 1 ms
            timeout = 0.001 if timeout is None else min(timeout, 0.001)
        event = get(self, timeout)
        if event is not None and event.rows is not None:
            now = time.perf_counter()
            for key in first_column(event.rows):
                handed.setdefault(key, now)
        return event

    write = sinks.CsvSink.write

    def write_noting(self: Any, seq: int, changes: Any) -> None:
        started = time.perf_counter()
        write(self, seq, changes)
        now = time.perf_counter()
        spent["consumer: CsvSink.write (with flush)"].append(now - started)
        for key in first_column(changes):
            visible.setdefault(key, now)

    buffer.Backlog.get = get_noting
    sinks.CsvSink.write = write_noting
    timed(buffer.RowBuffer, "_take", "producer: _take (lists -> Arrow, hand-over)")
    timed(graph.StreamRunner, "_commit", "consumer: _commit (all of it)")
    timed(state.KeyedState, "apply", "consumer: KeyedState.apply (upsert)")
    if hasattr(state.KeyedState, "apply_small"):  # small commits: Python values throughout
        timed(state.KeyedState, "apply_small", "consumer: KeyedState.apply_small (upsert)")
    timed(graph, "_stamp", "consumer: _stamp (time column)")


def first_column(rows: Any) -> list[Any]:
    """The first column's values of an Arrow batch, or of a small batch of Python values
    (Headwater keeps commits under 256 rows as Python lists: `columns`, or tuples: `rows`)."""
    if hasattr(rows, "column"):
        return rows.column(0).to_pylist()
    if hasattr(rows, "columns"):
        return list(rows.columns[0])
    return [row[0] for row in rows.rows]


def profile_state() -> None:
    import cProfile
    import pstats

    import pyarrow as pa

    try:
        from headwater.stream import buffer, state
    except ImportError as exc:
        raise SystemExit(f"Headwater's stream internals moved: {exc}") from None
    schema = pa.schema(
        [
            ("key", pa.int64()),
            ("name", pa.string()),
            ("value", pa.float64()),
            (buffer.OP, pa.int8()),
        ]
    )
    commits = [
        pa.table([[i], ["x"], [float(i)], [buffer.UPSERT]], schema=schema) for i in range(1000)
    ]

    def warmed() -> Any:
        keyed = state.KeyedState(["key", "name", "value"], ["key"], int_key=True)
        for rows in commits[:WARM_UP]:
            keyed.apply(rows)
        return keyed

    keyed = warmed()
    started = time.perf_counter()
    for rows in commits[WARM_UP:]:
        keyed.apply(rows)
    per_call = (time.perf_counter() - started) / (len(commits) - WARM_UP)
    print(f"# KeyedState.apply, one-row commits: {per_call * 1e6:.0f} microseconds per call")
    keyed, profile = warmed(), cProfile.Profile()
    for rows in commits[WARM_UP:]:
        profile.runcall(keyed.apply, rows)
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


def main(mode: str) -> None:
    if mode == "state":
        profile_state()
        return
    if mode not in ("timer", "commit", "timer-capped"):
        raise SystemExit(f"unknown mode {mode!r}; use timer, commit, timer-capped or state")
    api = engines.load("headwater")
    instrument(capped=mode == "timer-capped")
    commit_each = mode == "commit"

    class Trickle(api.ConnectorSubject):
        def run(self) -> None:
            due = time.perf_counter()
            for i in range(ROWS):
                due += INTERVAL_S
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent[i] = time.perf_counter()
                self.next(key=i, name="x", value=float(i))
                if commit_each:
                    self.commit()

    work = engines.work_dir(f"profile_{mode}")
    table = api.read(
        Trickle(),
        schema=engines.rows_schema(api, primary_key=True),
        autocommit_duration_ms=None if commit_each else 10,
    )
    api.write_csv(table, work / "out.csv")
    api.run()
    engines.cleanup(work)
    keys = [k for k in sent if k >= WARM_UP and k in visible]
    lines = {
        "next -> consumer has it": [handed[k] - sent[k] for k in keys],
        "next -> CSV write returned (in-process visible)": [visible[k] - sent[k] for k in keys],
        **{label: values[WARM_UP:] for label, values in spent.items()},
    }
    print(f"# Headwater, {mode} mode: {len(keys)} rows after the warm-up, microseconds")
    print(f"{'stage':58} {'calls':>6} {'median':>9} {'p90':>9}")
    for label, values in lines.items():
        if not values:
            continue
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        median = statistics.median(ordered)
        print(f"{label:58} {len(values):6} {median * 1e6:9.0f} {p90 * 1e6:9.0f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])

"""Small commits travel as Python values (the latency path); large ones as Arrow. Both must
give the same changes and the same bytes in the files: each test here runs the same input
through both paths and compares."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater import stream
from headwater.stream.buffer import DELETE, OP, UPSERT
from headwater.stream.rows import SMALL, ChangeRows
from headwater.stream.sinks import CsvSink, JsonLinesSink
from headwater.stream.state import OVERLAY_LIMIT, KeyedState

ROW_SCHEMA = pa.schema(
    [("key", pa.int64()), ("name", pa.string()), ("value", pa.float64()), (OP, pa.int8())]
)
COLUMNS = ["key", "name", "value"]


def as_table(rows: list[tuple[Any, ...]], schema: pa.Schema = ROW_SCHEMA) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pa.Table.from_arrays(
        [pa.array(list(c), f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )


def comparable(changes: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """NaN != NaN: compare its text instead."""
    return [tuple("nan" if v != v else v for v in row) for row in changes]


def random_commits(seed: int, commits: int, keys: int) -> list[list[tuple[Any, ...]]]:
    rng = random.Random(seed)
    values = [0.5, 1.0, -0.0, math.nan, None, 1e300]
    script = []
    for _ in range(commits):
        rows = []
        for _ in range(rng.randint(1, 6)):
            key = rng.randrange(keys)
            if rng.random() < 0.2:
                rows.append((key, None, None, DELETE))
            else:
                value = rng.choice(values)
                rows.append((key, rng.choice(["a", "b", 'say "hi"']), value, UPSERT))
        script.append(rows)
    return script


@pytest.mark.parametrize("int_key", [True, False], ids=["int-index", "dict-index"])
def test_small_and_arrow_commits_give_the_same_changes(int_key: bool) -> None:
    """Several thousand random small commits (upserts, re-sends, NaN, deletes of known and
    unknown keys) over enough keys that the overlay outgrows its limit and is folded into the
    storage; two commits go through the Arrow path on the small-path state, which folds too."""
    arrow = KeyedState(COLUMNS, ["key"], int_key, ROW_SCHEMA)
    small = KeyedState(COLUMNS, ["key"], int_key, ROW_SCHEMA)
    folds = 0
    for number, rows in enumerate(random_commits(7, 3_000, 3 * OVERLAY_LIMIT)):
        expected = arrow.apply(as_table(rows)).to_pylist()
        if number in (1_000, 2_999):
            got = small.apply(as_table(rows)).to_pylist()
        else:
            before = len(small.overlay)
            got = [
                dict(zip([*COLUMNS, "diff"], row, strict=True)) for row in small.apply_small(rows)
            ]
            folds += len(small.overlay) < before
        assert comparable([tuple(r.values()) for r in got]) == comparable(
            [tuple(r.values()) for r in expected]
        ), f"commit {number}: {rows}"
    assert folds > 0, "the overlay never outgrew its limit: the test is too small"


def test_a_fold_keeps_deletes_and_multi_column_keys() -> None:
    schema = pa.schema(
        [("region", pa.string()), ("id", pa.int64()), ("value", pa.float64()), (OP, pa.int8())]
    )
    state = KeyedState(["region", "id", "value"], ["region", "id"], False, schema)
    assert state.apply_small([("eu", 1, 1.0, UPSERT), ("us", 1, 2.0, UPSERT)]) == [
        ("eu", 1, 1.0, 1),
        ("us", 1, 2.0, 1),
    ]
    assert state.apply_small([("eu", 1, None, DELETE)]) == [("eu", 1, 1.0, -1)]
    # A large commit folds the overlay first: the delete must hold, the other key must stay.
    again = as_table([("eu", 1, 3.0, UPSERT), ("us", 1, 2.0, UPSERT)], schema)
    assert state.apply(again).to_pylist() == [{"region": "eu", "id": 1, "value": 3.0, "diff": 1}]
    assert state.overlay == {}


VALUES = [0.5, 1.0, -0.0, 1e16, 1e-07, 0.1 + 0.2, 123456789.0, math.inf, -math.inf, None]


def changes_schema(extra: list[pa.Field]) -> pa.Schema:
    return pa.schema([*extra, ("time", pa.int64()), ("diff", pa.int8())])


def both_ways(sink_class: type, tmp_path: Path, schema: pa.Schema, rows: list[tuple[Any, ...]]):
    """The bytes a sink writes for `rows` as a small batch, and as an Arrow table."""
    written = []
    for name, changes in [("rows", ChangeRows(rows, schema)), ("arrow", as_table(rows, schema))]:
        path = tmp_path / name
        sink = sink_class(path)
        sink.open(schema, stream="s", durable=False)
        sink.write(1, changes)
        sink.write(2, changes)  # the header once
        sink.close()
        written.append(path.read_bytes())
    return written


@pytest.mark.parametrize("sink_class", [CsvSink, JsonLinesSink])
def test_small_batches_write_the_same_bytes_as_arrow(sink_class: type, tmp_path: Path) -> None:
    schema = changes_schema(
        [
            pa.field("key", pa.int64()),
            pa.field("name", pa.string()),
            pa.field("value", pa.float64()),
            pa.field("flag", pa.bool_()),
            pa.field("blob", pa.binary()),
        ]
    )
    names = ["plain", 'say "hi", ok', "two\nlines", "ünïcode", "", None]
    rows = [
        (
            i,
            names[i % len(names)],
            VALUES[i % len(VALUES)],
            i % 3 == 0,
            b"\xffraw" if i % 4 else None,
            2,
            1,
        )
        for i in range(30)
    ]
    small, arrow = both_ways(sink_class, tmp_path, schema, rows)
    assert small == arrow
    assert small.count(b"\n") >= 60


def test_a_large_batch_after_small_ones_does_not_repeat_the_csv_header(tmp_path: Path) -> None:
    schema = changes_schema([pa.field("key", pa.int64())])
    sink = CsvSink(tmp_path / "out.csv")
    sink.open(schema, stream="s", durable=False)
    sink.write(1, ChangeRows([(1, 2, 1)], schema))
    sink.write(2, as_table([(k, 4, 1) for k in range(SMALL + 1)], schema))
    sink.close()
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == '"key","time","diff"'
    assert lines.count('"key","time","diff"') == 1
    assert len(lines) == 1 + 1 + SMALL + 1


def test_change_rows_become_arrow_with_the_schema() -> None:
    schema = changes_schema([pa.field("key", pa.int64(), nullable=False)])
    table = ChangeRows([(1, 2, 1), (2, 2, -1)], schema).to_arrow()
    assert table.schema == schema
    assert table.to_pylist() == [
        {"key": 1, "time": 2, "diff": 1},
        {"key": 2, "time": 2, "diff": -1},
    ]
    assert ChangeRows([], schema).to_arrow().num_rows == 0


def test_one_commit_of_small_chunks_and_an_arrow_batch(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    """A tiny backlog makes chunks of a few rows (Python values); a row Arrow must reject sends
    the last batch of the same commit the Arrow way. The commit mixes both and lands whole."""

    class Keyed(stream.Schema):
        key: int = stream.column_definition(primary_key=True)
        value: str

    def script(s: Any) -> None:
        for key in range(10):
            s.next(key=key, value=f"v{key}")
        s.next(key=2**64, value="too big")  # skipped when its batch is handed over
        s.commit()

    table = stream.read(
        subject(script),
        schema=Keyed,
        autocommit_duration_ms=None,
        max_backlog_size=8,
        on_bad_row="skip",
    )
    sink = make_sink(table)
    stream.run()
    assert len(sink.writes) == 1, "one commit, one write"
    assert sorted(r["key"] for r in sink.rows()) == list(range(10))

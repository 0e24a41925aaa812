"""`Rows`, the C buffer behind the subject's `next()`, against RowBuffer's Python path,
through real streams: conftest runs each test with the C paths on ("c") and off ("python"), and
both must accept, convert and refuse the same values. The C functions themselves are tested in
tests/stream_c/test_c_functions.py.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import gc
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from headwater import stream
from headwater.stream import BadRowError, StreamClosedError, native
from headwater.stream.rows import SMALL
from headwater.stream.schema import schema_from_columns

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def test_native_is_built() -> None:
    assert native.AVAILABLE, (
        "headwater.stream._native is not built, so streams run only the Python twins: "
        "install gcc and the Python headers (python3-dev), then `pip install -e .`"
    )


# -- Rows, through real streams --------------------------------------------------------------


class Parcel(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    name: str
    weight: float
    note: str | None
    tag: str = "none"


def _run(
    subject: Any,
    make_sink: Callable[..., Any],
    script: Callable[[Any], None],
    schema: type[stream.Schema] = Parcel,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run one stream (commits only where the script commits); the rows without time."""
    table = stream.read(subject(script), schema=schema, autocommit_duration_ms=None, **options)
    sink = make_sink(table)
    stream.run()
    return [{k: v for k, v in row.items() if k != "time"} for row in sink.rows()]


def test_keywords_in_any_order_and_missing_ones_with_defaults(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(key=1, name="a", weight=1.5, note="n", tag="t")  # schema order
        s.next(tag="t", note=None, weight=2.5, name="b", key=2)  # reversed
        s.next(weight=3.5, key=3, name="c")  # note and tag from their defaults
        s.next_json({"name": "d", "key": 4, "weight": 4.5})

    assert _run(subject, make_sink, script) == [
        {"key": 1, "name": "a", "weight": 1.5, "note": "n", "tag": "t", "diff": 1},
        {"key": 2, "name": "b", "weight": 2.5, "note": None, "tag": "t", "diff": 1},
        {"key": 3, "name": "c", "weight": 3.5, "note": None, "tag": "none", "diff": 1},
        {"key": 4, "name": "d", "weight": 4.5, "note": None, "tag": "none", "diff": 1},
    ]


def test_next_converts_and_refuses_as_the_python_path_does(
    subject: Any, make_sink: Callable[..., Any], tmp_path: Path
) -> None:
    errors: list[str] = []
    calls: list[dict[str, Any]] = [
        {"key": 1, "name": "int weight", "weight": 3},  # int into float: stored as 3.0
        {"key": 2, "name": "u", "weight": 1.0, "colour": "red"},  # unknown column
        {"key": True, "name": "bool key", "weight": 1.0},  # bool into int
        {"key": 3, "name": "n", "weight": 1.0, "note": None},  # None, nullable: fine
        {"key": 4, "name": None, "weight": 1.0},  # None, not nullable
        {"key": 5, "name": "big", "weight": 2**70},  # an int beyond int64 into float: fine
        {"key": INT64_MIN, "name": "min", "weight": -0.0},
        {"key": INT64_MAX, "name": "max", "weight": 1e-5},
    ]

    def script(s: Any) -> None:
        for values in calls:
            try:
                s.next(**values)
            except BadRowError as error:
                errors.append(str(error))

    table = stream.read(subject(script), schema=Parcel, autocommit_duration_ms=None)
    stream.write_csv(table, tmp_path / "out.csv")
    sink = make_sink(table)
    stream.run()

    assert len(errors) == 3
    assert "colour='red'" in errors[0]
    assert "no such column" in errors[0]
    assert "column 'key' got True" in errors[1]
    assert "a bool is not a number" in errors[1]
    assert "column 'name' got None" in errors[2]
    assert "not optional" in errors[2]
    rows = [(r["key"], r["weight"], r["note"]) for r in sink.rows()]
    assert rows == [
        (1, 3.0, None),
        (3, 1.0, None),
        (5, float(2**70), None),
        (INT64_MIN, -0.0, None),
        (INT64_MAX, 1e-5, None),
    ]
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[1].startswith('"1","int weight","3.0",')  # a float, as repr writes it
    assert lines[3].startswith(f'"5","big","{float(2**70)!r}",')
    assert lines[5].startswith(f'"{INT64_MAX}","max","1e-05",')


@pytest.mark.parametrize("key", [2**63, INT64_MIN - 1], ids=["above", "below"])
def test_an_int_beyond_int64_is_bad_at_next_in_c_and_at_the_hand_over_in_python(
    subject: Any, make_sink: Callable[..., Any], key: int
) -> None:
    at: list[str] = []

    def script(s: Any) -> None:
        s.next(key=1, name="a", weight=1.0)
        try:
            s.next(key=key, name="b", weight=1.0)
        except BadRowError as error:
            at.append(f"next: {error}")
        try:
            s.commit()
        except BadRowError as error:
            at.append(f"commit: {error}")

    rows = _run(subject, make_sink, script)
    [where] = at
    assert where.startswith("next:" if native.enabled() else "commit:")
    assert f"column 'key' got {key}" in where
    assert [r["key"] for r in rows] == [1]


LONE_SURROGATE = "bad \ud800 text"


@pytest.mark.parametrize("policy", ["raise", "skip", "dead_letter"])
def test_a_lone_surrogate_in_a_str_column_is_a_bad_row(
    subject: Any,
    make_sink: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    per_row_path: str,
    policy: str,
) -> None:
    at: list[str] = []

    def script(s: Any) -> None:
        s.next(key=1, name="good", weight=1.0)
        for step, call in [
            ("next", lambda: s.next(key=2, name=LONE_SURROGATE, weight=1.0)),
            ("commit", s.commit),
        ]:
            try:
                call()
            except BadRowError as error:
                at.append(f"{step}: {error}")
        s.next(key=3, name="after", weight=1.0)

    table = stream.read(
        subject(script), schema=Parcel, autocommit_duration_ms=None, on_bad_row=policy
    )
    sink = make_sink(table)
    letters = make_sink(table.dead_letters, name="letters") if policy == "dead_letter" else None
    with caplog.at_level(logging.WARNING, logger="headwater.stream"):
        stream.run()

    assert [r["key"] for r in sink.rows()] == [1, 3]
    if policy == "raise":
        [where] = at
        assert where.startswith("next:" if native.enabled() else "commit:")
        assert "column 'name'" in where
        return
    assert at == []
    warnings = [r.getMessage() for r in caplog.records if r.name == "headwater.stream"]
    assert len(warnings) == 1
    assert f"bad row 1, {policy}" in warnings[0]
    assert "column 'name'" in warnings[0]
    if letters is not None:
        [letter] = letters.rows()
        assert "column 'name'" in letter["reason"]
        assert "ud800" in letter["row"]


class Colour(enum.IntEnum):
    RED = 5


class Label(str):
    """A str subclass, as enum.StrEnum members and many parsers' strings are."""


@pytest.mark.parametrize(
    ("values", "stored"),
    [
        ({"key": 1, "name": "np", "weight": np.float64(1.5)}, (1, "np", 1.5)),
        ({"key": Colour.RED, "name": "enum", "weight": 1.0}, (5, "enum", 1.0)),
        ({"key": 2, "name": Label("label"), "weight": 1.0}, (2, "label", 1.0)),
    ],
    ids=["numpy-float64", "int-enum", "str-subclass"],
)
def test_a_value_of_a_subclass_of_the_column_type_lands(
    subject: Any,
    make_sink: Callable[..., Any],
    request: pytest.FixtureRequest,
    per_row_path: str,
    values: dict[str, Any],
    stored: tuple[Any, ...],
) -> None:
    # The Python check accepts isinstance(value, column type), so numpy.float64 (a float
    # subclass) and the others land on the Python path.
    errors: list[str] = []

    def script(s: Any) -> None:
        try:
            s.next(**values)
        except BadRowError as error:
            errors.append(str(error))

    rows = _run(subject, make_sink, script)
    assert errors == []
    assert [(r["key"], r["name"], r["weight"]) for r in rows] == [stored]


TEXT_VALUES = ["héllo", "✓ check", "𝄞 clef", "日本語", "", 'q"uote', "a,b\nc", "\x00nul"]
BLOB_VALUES = [b"", b"\x00\xff", "é".encode(), b"\xed\xa0\x80", b"\xf5", bytes(range(256))]


class Mixed(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    text: str
    blob: bytes
    maybe: bytes | None
    flag: bool


@pytest.mark.parametrize("count", [len(TEXT_VALUES) * 3, SMALL * 2], ids=["small", "large"])
def test_non_ascii_text_and_bytes_round_trip(
    subject: Any, make_sink: Callable[..., Any], count: int
) -> None:
    sent = [
        {
            "key": i,
            "text": TEXT_VALUES[i % len(TEXT_VALUES)] * (1 + i % 3),
            "blob": BLOB_VALUES[i % len(BLOB_VALUES)],
            "maybe": None if i % 4 == 0 else BLOB_VALUES[(i + 1) % len(BLOB_VALUES)],
            "flag": i % 3 == 0,
        }
        for i in range(count)
    ]

    def script(s: Any) -> None:
        for values in sent:
            s.next(**values)
        s.next(key=count, text="ba", blob=bytearray(b"\x01\x02"), flag=False)  # via the checks

    rows = _run(subject, make_sink, script, schema=Mixed)
    landed = [{k: v for k, v in r.items() if k != "diff"} for r in rows]
    assert landed == [
        *sent,
        {"key": count, "text": "ba", "blob": b"\x01\x02", "maybe": None, "flag": False},
    ]


def test_positional_arguments_to_next_raise_type_error(
    subject: Any,
    make_sink: Callable[..., Any],
    request: pytest.FixtureRequest,
    per_row_path: str,
) -> None:

    def script(s: Any) -> None:  # (a failed pytest.raises here makes stream.run() raise)
        with pytest.raises(TypeError, match="keyword arguments"):
            s.next(1, "a", 1.0)
        with pytest.raises(TypeError, match="keyword arguments"):
            s.next({"key": 1})
        s.next(key=1, name="a", weight=1.0)

    assert [r["key"] for r in _run(subject, make_sink, script)] == [1]


def test_next_after_close_raises_stream_closed(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next(key=1, name="a", weight=1.0)
        s.close()
        closed = "after the stream was closed"
        with pytest.raises(StreamClosedError, match=closed):
            s.next(key=2, name="b", weight=1.0)
        with pytest.raises(StreamClosedError, match=closed):
            s.next(key=3, name="the checked path", weight=3)
        with pytest.raises(StreamClosedError, match=closed):
            s.next_json({"key": 4, "name": "d", "weight": 1.0})

    assert [r["key"] for r in _run(subject, make_sink, script)] == [1]


def test_a_schema_of_more_than_64_columns_runs_on_the_python_path(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    wide = schema_from_columns("Wide", {f"c{i}": int if i % 2 else str for i in range(70)})
    in_c: list[bool] = []

    def script(s: Any) -> None:
        in_c.append(s._buffer._native is not None)
        for row in range(3):
            s.next(**{f"c{i}": row * 100 + i if i % 2 else f"{row}:{i}" for i in range(70)})
        s.next(**{f"c{i}": f"r{i}" if i % 2 == 0 else i for i in reversed(range(70))})

    rows = _run(subject, make_sink, script, schema=wide)
    assert in_c == [False]
    assert len(rows) == 4
    assert rows[1]["c69"] == 169
    assert rows[1]["c68"] == "1:68"
    assert rows[3]["c0"] == "r0"
    assert rows[3]["c1"] == 1


class Event(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    payload: dict  # type: ignore[type-arg]
    at: datetime.datetime
    day: datetime.date | None


def test_json_and_datetime_columns_run_on_the_python_path(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    in_c: list[bool] = []

    def script(s: Any) -> None:
        in_c.append(s._buffer._native is not None)
        s.next(key=1, payload={"b": 1, "a": [1, "é"]}, at=moment)
        s.next(at=moment, day=moment.date(), payload=[True, None], key=2)
        with pytest.raises(BadRowError, match="not JSON"):
            s.next(key=3, payload={"x": {1, 2}}, at=moment)

    rows = _run(subject, make_sink, script, schema=Event)
    assert in_c == [False]
    assert rows == [
        {"key": 1, "payload": '{"a":[1,"\\u00e9"],"b":1}', "at": moment, "day": None, "diff": 1},
        {"key": 2, "payload": "[true,null]", "at": moment, "day": moment.date(), "diff": 1},
    ]


def test_a_subject_that_overrides_next_keeps_its_own(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    class Shouting(subject):  # type: ignore[misc]
        calls = 0

        def next(self, **values: Any) -> None:
            self.calls += 1
            super().next(**{k: v.upper() if isinstance(v, str) else v for k, v in values.items()})

    shouting = Shouting(lambda s: [s.next(key=k, name="quiet", weight=1.0) for k in range(3)])
    table = stream.read(shouting, schema=Parcel, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()
    assert "next" not in vars(shouting)
    assert shouting.calls == 3
    assert [(r["key"], r["name"]) for r in sink.rows()] == [(k, "QUIET") for k in range(3)]


class Numbered(stream.Schema):
    n: int
    text: str
    weight: float | None


@pytest.mark.parametrize("backlog", [None, 1_000], ids=["chunks-of-8192", "chunks-of-500"])
def test_more_rows_than_a_chunk_land_once_and_in_order(
    subject: Any, make_sink: Callable[..., Any], backlog: int | None
) -> None:
    total = 20_000
    in_c: list[bool] = []

    def script(s: Any) -> None:
        in_c.append("next" in vars(s))
        for n in range(total):
            s.next(n=n, text=f"row {n}", weight=None if n % 7 == 0 else n / 4)
        s.commit()

    table = stream.read(
        subject(script), schema=Numbered, autocommit_duration_ms=None, max_backlog_size=backlog
    )
    sink = make_sink(table)
    stream.run()
    assert in_c == [native.enabled()]  # C's Rows.next is the subject's next
    assert len(sink.writes) == 1  # one commit, however many chunks
    rows = sink.rows()
    assert [r["n"] for r in rows] == list(range(total))
    assert [(r["text"], r["weight"], r["diff"]) for r in rows[8_400:8_402]] == [
        ("row 8400", None, 1),
        ("row 8401", 8_401 / 4, 1),
    ]


def test_deletes_between_upserts(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next(key=1, name="a", weight=1.0)
        s.next(key=2, name="b", weight=2.0)
        s.delete(key=1)
        s.next(key=3, name="c", weight=3.0)
        s.commit()
        s.next(key=1, name="a2", weight=1.5)
        s.delete(key=2)
        s.next(key=2, name="b", weight=2.0)  # back as it was: no change
        s.delete(key=99)  # a key never seen
        s.commit()
        s.delete(key=3)
        s.next(key=1, name="a2", weight=1.5)  # an identical re-send
        s.commit()

    table = stream.read(subject(script), schema=Parcel, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()
    assert sink.batches() == [
        [(2, "b", 2.0, None, "none", 1), (3, "c", 3.0, None, "none", 1)],
        [(1, "a2", 1.5, None, "none", 1)],
        [(3, "c", 3.0, None, "none", -1)],
    ]


class Counted(stream.Schema):
    n: int
    x: float
    s: str
    b: bytes


def test_values_passed_to_next_are_not_leaked(subject: Any, make_sink: Callable[..., Any]) -> None:
    text = "".join(["leak", "-probe-", str(id(object()))])  # made at run time: not shared
    blob = text.encode() * 3
    whole = int("1000000000000007")  # an int into the float column: the checked path
    huge = 2**70 + len(text)  # beyond int64: a bad row (skipped)
    probes = (text, blob, whole, huge)
    gc.collect()
    before = [sys.getrefcount(p) for p in probes]

    def script(s: Any) -> None:
        for _ in range(3_000):
            s.next(n=1, x=1.5, s=text, b=blob)
            s.next(b=blob, s=text, x=whole, n=2)
            s.next(n=huge, x=1.5, s=text, b=blob)
        s.close()
        for _ in range(100):
            with contextlib.suppress(StreamClosedError):
                s.next(n=1, x=1.5, s=text, b=blob)

    table = stream.read(
        subject(script), schema=Counted, autocommit_duration_ms=None, on_bad_row="skip"
    )
    sink = make_sink(table)
    stream.run()
    assert len(sink.rows()) == 6_000
    del table, sink
    gc.collect()
    assert [sys.getrefcount(p) for p in probes] == before

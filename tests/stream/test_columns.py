"""Columns: next_json / next_str / next_bytes, defaults, optional columns, JSON columns, the
conversions next() makes (int into float) and refuses (bool into int), the Arrow schema sinks
receive, and the annotations a Schema rejects when it is declared."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from headwater import stream
from headwater.stream import BadRowError
from headwater.stream.schema import SchemaDefinitionError


def collect(
    subject: Any,
    make_sink: Callable[..., Any],
    script: Callable[[Any], None],
    schema: type[stream.Schema] | None = None,
) -> list[dict[str, Any]]:
    """Run one stream; the rows its sink received, without time and diff."""
    table = stream.read(subject(script), schema=schema, autocommit_duration_ms=None)
    sink = make_sink(table)
    stream.run()
    return [{k: v for k, v in row.items() if k not in ("time", "diff")} for row in sink.rows()]


def test_next_str_and_next_bytes_fill_the_default_data_column(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next_str("hello")
        s.next_bytes("héllo".encode())  # decoded into the str column
        s.next(data="plain")

    assert collect(subject, make_sink, script) == [
        {"data": "hello"},
        {"data": "héllo"},
        {"data": "plain"},
    ]


def test_the_default_schema_is_a_single_str_data_column(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    table = stream.read(subject(lambda s: s.next_str("x")))
    sink = make_sink(table)
    stream.run()
    assert sink.schema.names == ["data", "time", "diff"]
    assert sink.schema.field("data").type == pa.string()


class Blob(stream.Schema):
    data: bytes


def test_next_bytes_and_next_str_into_a_bytes_data_column(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next_bytes(b"\x00\xff")
        s.next_str("ab")  # encoded as UTF-8
        s.next(data=bytearray(b"xy"))

    rows = collect(subject, make_sink, script, schema=Blob)
    assert rows == [{"data": b"\x00\xff"}, {"data": b"ab"}, {"data": b"xy"}]


class Cat(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    genus: str
    epithet: str


def test_next_json_takes_a_dict_or_json_text(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next_json({"key": 1, "genus": "felis", "epithet": "catus"})
        s.next_json('{"key": 2, "genus": "lynx", "epithet": "lynx"}')

    assert collect(subject, make_sink, script, schema=Cat) == [
        {"key": 1, "genus": "felis", "epithet": "catus"},
        {"key": 2, "genus": "lynx", "epithet": "lynx"},
    ]


class WithDefaults(stream.Schema):
    key: int
    size: int = 5
    owner: str = stream.column_definition(default_value="nobody")
    note: str | None
    score: float | None = 1.5


def test_defaults_and_optional_columns(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next(key=1)
        s.next(key=2, size=7, owner="ada", note="hi", score=None)
        s.next(key=3, note=None)

    assert collect(subject, make_sink, script, schema=WithDefaults) == [
        {"key": 1, "size": 5, "owner": "nobody", "note": None, "score": 1.5},
        {"key": 2, "size": 7, "owner": "ada", "note": "hi", "score": None},
        {"key": 3, "size": 5, "owner": "nobody", "note": None, "score": 1.5},
    ]


class Document(stream.Schema):
    key: int
    meta: dict
    tags: list[str]
    scores: dict[str, int]


def test_json_columns_are_stored_as_json_text(subject: Any, make_sink: Callable[..., Any]) -> None:
    def script(s: Any) -> None:
        s.next(key=1, meta={"a": [1, 2], "b": None}, tags=["x", "y"], scores={"q": 3})
        s.next(key=2, meta={}, tags=[], scores={})

    rows = collect(subject, make_sink, script, schema=Document)
    assert rows == [
        {"key": 1, "meta": '{"a":[1,2],"b":null}', "tags": '["x","y"]', "scores": '{"q":3}'},
        {"key": 2, "meta": "{}", "tags": "[]", "scores": "{}"},
    ]
    assert json.loads(rows[0]["meta"]) == {"a": [1, 2], "b": None}


class OptionalJson(stream.Schema):
    key: int
    meta: dict | None


def test_an_omitted_optional_json_column_is_null_like_an_explicit_none(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(key=1, meta=None)
        s.next(key=2)

    rows = collect(subject, make_sink, script, schema=OptionalJson)
    assert rows == [{"key": 1, "meta": None}, {"key": 2, "meta": None}]


class Measure(stream.Schema):
    key: int
    value: float


def test_an_int_into_a_float_column_is_converted(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    def script(s: Any) -> None:
        s.next(key=1, value=3)
        s.next(key=2, value=2.5)

    rows = collect(subject, make_sink, script, schema=Measure)
    assert rows == [{"key": 1, "value": 3.0}, {"key": 2, "value": 2.5}]
    assert type(rows[0]["value"]) is float


@pytest.mark.parametrize(
    ("values", "column", "shown"),
    [
        ({"key": True, "value": 1.0}, "key", "True"),  # bool into int
        ({"key": 1, "value": False}, "value", "False"),  # bool into float
    ],
)
def test_a_bool_into_a_number_column_is_rejected(
    subject: Any, make_sink: Callable[..., Any], values: dict[str, Any], column: str, shown: str
) -> None:
    caught: list[BadRowError] = []

    def script(s: Any) -> None:
        try:
            s.next(**values)
        except BadRowError as error:
            caught.append(error)
        s.next(key=9, value=9.0)

    rows = collect(subject, make_sink, script, schema=Measure)
    assert rows == [{"key": 9, "value": 9.0}]
    assert len(caught) == 1
    assert f"'{column}'" in str(caught[0])
    assert shown in str(caught[0])


class Moment(stream.Schema):
    at: datetime.datetime
    day: datetime.date


def test_datetime_and_date_columns(subject: Any, make_sink: Callable[..., Any]) -> None:
    at = datetime.datetime(2024, 6, 1, 12, 30, 15, 123456)
    caught: list[BadRowError] = []

    def script(s: Any) -> None:
        s.next(at=at, day=at.date())
        try:
            s.next(at=at, day=at)  # a datetime is not a date
        except BadRowError as error:
            caught.append(error)

    assert collect(subject, make_sink, script, schema=Moment) == [{"at": at, "day": at.date()}]
    assert len(caught) == 1
    assert "'day'" in str(caught[0])


def test_sinks_receive_the_columns_then_time_then_diff(
    subject: Any, make_sink: Callable[..., Any]
) -> None:
    table = stream.read(subject(lambda s: None), schema=WithDefaults)
    sink = make_sink(table)
    stream.run()
    assert sink.schema.names == ["key", "size", "owner", "note", "score", "time", "diff"]
    assert sink.schema.field("time").type == pa.int64()
    assert sink.schema.field("diff").type == pa.int8()
    assert sink.schema.field("score").type == pa.float64()


@pytest.mark.parametrize(
    ("annotation", "named"),
    [
        ("set", "set"),
        ("int | str", "mixes types"),
        ("tuple[int, int]", "tuple"),
        ("object", "object"),
    ],
)
def test_unsupported_annotations_are_rejected_when_the_schema_is_declared(
    annotation: str, named: str
) -> None:
    with pytest.raises(SchemaDefinitionError) as caught:
        type("Bad", (stream.Schema,), {"__annotations__": {"key": "int", "odd": annotation}})
    message = str(caught.value)
    assert "Bad.odd" in message
    assert named in message


def test_an_optional_primary_key_is_rejected() -> None:
    with pytest.raises(SchemaDefinitionError, match="primary key cannot be optional"):

        class Bad(stream.Schema):
            key: int | None = stream.column_definition(primary_key=True)


def test_a_default_of_the_wrong_type_is_rejected_when_the_schema_is_declared() -> None:
    with pytest.raises(SchemaDefinitionError, match="size"):

        class Bad(stream.Schema):
            size: int = "five"  # type: ignore[assignment]

"""Plain Python values to Flyte literals and back, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pytest
from flyteidl.core import literals_pb2 as lit
from google.protobuf import json_format

from headwater.tasks.errors import OutputConversionError
from headwater.tasks.literals import (
    fill_literal_map,
    to_literal,
    to_literal_map,
    to_python,
    to_python_map,
)

MOMENT = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


class Level(IntEnum):
    HIGH = 2


def as_dict(literal: Any) -> dict[str, Any]:
    return json_format.MessageToDict(literal)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"scalar": {"noneType": {}}}),
        (True, {"scalar": {"primitive": {"boolean": True}}}),
        (7, {"scalar": {"primitive": {"integer": "7"}}}),
        (-(2**63), {"scalar": {"primitive": {"integer": str(-(2**63))}}}),
        (Level.HIGH, {"scalar": {"primitive": {"integer": "2"}}}),  # once hung: `in range()`
        (1.5, {"scalar": {"primitive": {"floatValue": 1.5}}}),
        ("hi", {"scalar": {"primitive": {"stringValue": "hi"}}}),
        (MOMENT, {"scalar": {"primitive": {"datetime": "2026-01-02T03:04:05.123456Z"}}}),
        (timedelta(seconds=90), {"scalar": {"primitive": {"duration": "90s"}}}),
        (
            [1, "a"],
            {
                "collection": {
                    "literals": [
                        {"scalar": {"primitive": {"integer": "1"}}},
                        {"scalar": {"primitive": {"stringValue": "a"}}},
                    ]
                }
            },
        ),
        ({"a": [1, None]}, {"scalar": {"generic": {"a": [1.0, None]}}}),
    ],
)
def test_to_literal(value: Any, expected: dict[str, Any]) -> None:
    assert as_dict(to_literal(value)) == expected


def test_a_naive_datetime_is_utc_and_an_aware_one_is_converted() -> None:
    naive = MOMENT.replace(tzinfo=None)
    paris = MOMENT.astimezone(timezone(timedelta(hours=1)))
    assert to_literal(naive) == to_literal(MOMENT) == to_literal(paris)


def test_literals_pass_through() -> None:
    literal = to_literal(3)
    assert to_literal(literal) is literal
    literal_map = lit.LiteralMap(literals={"a": literal})
    assert to_literal_map(literal_map) is literal_map


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"n": 2**63}, "output n = 9223372036854775808 does not fit a Flyte integer"),
        ({"d": Decimal("1.5")}, "output d is a Decimal, which has no Flyte literal form"),
        ({"rows": [1, {2}]}, r"output rows\[1\] is a set"),
        ({"cfg": {"when": MOMENT}}, "output cfg is a dict that is not JSON"),
        ([1, 2], "outputs must be a dict of values or a LiteralMap, not list"),
    ],
)
def test_conversion_errors_name_the_output(outputs: Any, message: str) -> None:
    with pytest.raises(OutputConversionError, match=message):
        to_literal_map(outputs)
    with pytest.raises(OutputConversionError, match=message):
        fill_literal_map(lit.LiteralMap(), outputs)


@pytest.mark.parametrize(
    "outputs",
    [
        {"o0": 42},
        {"i": 0, "f": 0.0, "s": "", "b": False},
        {"b": True, "i": -(2**63), "j": 2**63 - 1, "f": -0.0, "s": "héllo"},
        {"nan": float("nan"), "inf": float("inf"), "e": 1e-300},
        {"z": 1, "a": [1, "x"], "m": {"k": 1}, "n": None, "t": MOMENT, "d": timedelta(seconds=3)},
        {"enum": Level.HIGH, "lit": to_literal("v")},
        {1: 2, "1": "one"},
        {},
        lit.LiteralMap(literals={"a": to_literal(1)}),
    ],
)
def test_fill_literal_map_writes_the_bytes_to_literal_map_builds(outputs: Any) -> None:
    filled = lit.LiteralMap()
    fill_literal_map(filled, outputs)
    assert filled.SerializeToString() == to_literal_map(outputs).SerializeToString()


@pytest.mark.parametrize(
    "value",
    [None, False, 3, 2.5, "s", MOMENT, timedelta(minutes=2), [1, [2, "x"]], {"a": "b"}],
)
def test_round_trip(value: Any) -> None:
    assert to_python(to_literal(value)) == value


def test_reading_a_literal_map_and_literals_without_a_plain_form() -> None:
    blob = lit.Literal(scalar=lit.Scalar(blob=lit.Blob(uri="s3://b/k")))
    union = lit.Literal(scalar=lit.Scalar(union=lit.Union(value=to_literal(5))))
    nested = lit.Literal(map=lit.LiteralMap(literals={"k": to_literal("v")}))
    values = to_python_map(lit.LiteralMap(literals={"blob": blob, "u": union, "m": nested}))
    assert values == {"blob": blob, "u": 5, "m": {"k": "v"}}

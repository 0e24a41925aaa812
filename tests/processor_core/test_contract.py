"""Layer 4 without a sandbox: schema parsing, row checks, the report parser and coercion."""

from __future__ import annotations

import datetime
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from headwater.errors import HeadwaterError
from headwater.processor import OutputSchema
from headwater.processor.coerce import Problems, coerce_rows
from headwater.processor.contract import MalformedReport, check_rows, read_report
from headwater.processor.errors import ProcessorConfigError


def test_schema_parses_types_and_nullability() -> None:
    schema = OutputSchema.parse({"id": "int", "note": "string?", "meta": "json"})
    assert schema.names == ("id", "note", "meta")
    assert schema["note"].nullable and not schema["id"].nullable
    assert schema.to_mapping() == {"id": "int", "note": "string?", "meta": "json"}
    assert OutputSchema.parse(schema) is schema


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"id": "integer"}, "unknown type 'integer'; use one of int, float, bool, string, json"),
        ({"id": 3}, "the type must be a string"),
        ({"": "int"}, "non-empty strings"),
        ({}, "declares no columns"),
    ],
)
def test_schema_errors_say_what_to_write(mapping: Any, expected: str) -> None:
    with pytest.raises(ProcessorConfigError) as caught:
        OutputSchema.parse(mapping)
    assert expected in str(caught.value)
    assert isinstance(caught.value, HeadwaterError) and isinstance(caught.value, ValueError)


SCHEMA = OutputSchema.parse({"id": "int", "score": "float", "ok": "bool?", "name": "string"})


def problems_of(*rows: dict[str, Any], sources: list[int] | None = None) -> list[str]:
    return check_rows(list(rows), SCHEMA, sources)[1]


def test_valid_rows_come_back_in_schema_order_with_ints_as_floats() -> None:
    rows, problems, count = check_rows(
        [{"name": "a", "ok": None, "score": 2, "id": 1}], SCHEMA, None
    )
    assert rows == [{"id": 1, "score": 2.0, "ok": None, "name": "a"}]
    assert type(rows[0]["score"]) is float and problems == [] and count == 0


def test_each_problem_names_row_column_and_fix() -> None:
    problems = problems_of(
        {"id": 1, "score": 1.0, "ok": True, "name": "a"},
        {"id": True, "score": "x", "ok": 1, "name": None, "extra": 1},
        {"id": 2**64, "score": 1.0, "ok": None},
    )
    assert problems == [
        "output row 2: column 'extra' is not in the output schema (id, score, ok, name); "
        "remove it, or add it to the schema",
        "output row 2, column 'id': expected int, got bool True; bool is not accepted as int",
        "output row 2, column 'score': expected float, got string \"x\"; convert it with "
        "float(...), or change the output schema",
        "output row 2, column 'ok': expected bool, got int 1; use True or False, or change the "
        "output schema",
        "output row 2, column 'name': null (None) in a non-nullable column; return a string "
        "value, or declare the column as 'string?'",
        "output row 3, column 'id': the integer does not fit in 64 bits; return it as a string",
        "output row 3: column 'name' is missing; every row needs every schema column "
        "(id, score, ok, name)",
    ]


def test_row_by_row_problems_name_the_input_row() -> None:
    good = {"id": 1, "score": 1.0, "ok": None, "name": "a"}
    problems = problems_of(good, good, {**good, "id": "x"}, sources=[0, 2, 1])
    assert problems[0].startswith("output row 3 (from input row 3), column 'id'")


def test_problems_are_capped_but_counted() -> None:
    rows = [{"id": "x", "score": "y"} for _ in range(200)]
    _, problems, count = check_rows(rows, SCHEMA, None)
    assert len(problems) == 100 and count == 200 * 4  # two wrong types, two missing columns


def coerce(value: Any) -> list[dict[str, Any]]:
    problems = Problems()
    rows = coerce_rows(value, first_row=1, problems=problems)
    assert problems.count == 0, problems.items
    return rows


def frame(**fields: Any) -> bytes:
    return json.dumps({"status": "ok", "rows": [], "logs": [], **fields}).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"status": "ok", "rows": [{"v": NaN}]}',
        b"[" * 100_000 + b"]" * 100_000,
        frame(status="escaped"),
        frame(rows=[1, 2]),
        frame(logs=[["shout", "x"]]),
    ],
)
def test_malformed_reports_are_refused(payload: bytes) -> None:
    with pytest.raises(MalformedReport):
        read_report(payload)


def test_report_strings_and_logs_are_capped() -> None:
    report = read_report(
        frame(error="e" * 10**6, logs=[["info", "m"]] * 5000, dropped_logs=7, traceback=5)
    )
    assert len(report.error or "") == 4000 and report.traceback is None
    assert len(report.logs) == 1000 and report.dropped_logs == 7 + 4000
    assert report.logs[0] == {"level": "info", "message": "m"}


def test_coercion_converts_numpy_scalars_and_dates() -> None:
    df = pd.DataFrame({"n": [1, 2], "f": [0.5, 1.5], "b": [True, False]})
    df["when"] = pd.Timestamp("2024-01-02T03:04:05")
    rows = coerce(df.to_dict("records"))
    assert rows[0] == {"n": 1, "f": 0.5, "b": True, "when": "2024-01-02T03:04:05"}
    assert type(rows[0]["n"]) is int
    extra = coerce(
        [{"d": datetime.date(2024, 1, 2), "v": np.float32(2.5), "nested": {"a": [np.int8(1)]}}]
    )
    assert extra == [{"d": "2024-01-02", "v": 2.5, "nested": {"a": [1]}}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "the statement returned None: its last line must return a list of rows"),
        ((1,), "returned a tuple, not a list of rows; use a list instead"),
        ({"a": 1}, "wrap a single row in a list: [row]"),
        ((x for x in range(0)), "wrap it in list(...)"),
        (pd.DataFrame({"a": [1]}), "return df.to_dict('records')"),
        ([1], "output row 1 is an int, not a dict"),
        ([{1: "a"}], "output row 1: column names must be strings"),
        ([{"a": float("inf")}], "output row 1, column 'a': inf is not a valid value"),
        ([{"a": pd.NaT}], "NaT (a missing timestamp) is not a value; use None"),
        ([{"a": (1, 2)}], "a tuple is not allowed; use a list instead"),
        ([{"a": b"x"}], "decode it to a string"),
        ([{"a": object()}], "an object is not allowed; values may be None"),
    ],
)
def test_coercion_refuses_what_json_cannot_hold(value: Any, expected: str) -> None:
    problems = Problems()
    coerce_rows(value, first_row=1, problems=problems)
    assert problems.count == 1 and expected in problems.items[0]


def test_coercion_refuses_subclasses_and_deep_nesting() -> None:
    class Row(dict):  # type: ignore[type-arg]
        pass

    deep: list[Any] = []
    for _ in range(40):
        deep = [deep]
    problems = Problems()
    rows = coerce_rows(
        [Row(a=1), {"a": deep, "b": 1}], first_row=5, problems=problems, source=" (x)"
    )
    assert rows == [{"b": 1}]
    assert problems.items == [
        "output row 5 (x) is a Row (a subclass of dict), not a dict; return a list of dicts such "
        "as [{'column': value}]",
        "output row 6 (x), column 'a': value nested deeper than 32",
    ]


def test_every_problem_is_counted_and_the_first_hundred_kept() -> None:
    problems = Problems()
    coerce_rows([{"a": float("nan")}] * 250, first_row=1, problems=problems)
    assert (problems.count, len(problems.items)) == (250, 100)
    assert problems.summary().endswith("use None for a missing number (and 249 more problems)")

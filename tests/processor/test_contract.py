"""The statement contract of run_statement, through the real sandbox: row by row and bulk, the
data checkpoint, output-schema validation and its messages, what a statement may return, type
hints and syntax errors with the user's own line numbers, the seed's import rule, and the
arguments run_statement refuses before anything runs.

Logs, debug runs and failing closed are in test_contract_logs.py.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import pytest

from headwater.processor import (
    DEFAULT_ALLOWED_IMPORTS,
    ProcessorResult,
    ProcessorSettings,
    run_statement,
)

ROWS = [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}, {"id": 3, "name": "gamma"}]

# The seed's allow-list, verbatim (shared/reference/seeds/003_050a79cacde84169.txt).
SEED_ALLOWED_IMPORTS = (
    "string", "math", "itertools", "random", "warnings", "base64", "io", "json", "xml", "ssl",
    "time", "datetime", "yaml", "httpx", "pandas", "numpy", "deepdiff", "passlib.hash", "jose",
    "jose.backends", "jose.constants", "jose.utils", "openai", "matplotlib", "matplotlib.pyplot",
)  # fmt: skip


def src(text: str) -> str:
    """A statement written indented in this file, as the user would type it (line 1 first)."""
    return textwrap.dedent(text).lstrip("\n")


def ok_rows(result: ProcessorResult) -> list[dict[str, Any]]:
    assert result.verdict == "ok", (result.error, result.problems, result.logs[-5:])
    assert result.error is None
    return result.rows


def assert_names(message: str | None, *, row: int | None = None, line: int | None = None) -> str:
    assert message, "expected an error message"
    if row is not None:
        assert re.search(rf"(?i)\brow {row}\b", message), message
    if line is not None:
        assert re.search(rf"(?i)\bline {line}\b", message), message
    return message


# --- row by row and bulk ---------------------------------------------------------------------


def test_row_mode_runs_once_per_input_row_with_a_one_element_list() -> None:
    statement = "return [{'n': len(INPUT_DATA), 'id': INPUT_DATA[0]['id']}]"
    result = run_statement(statement, {"n": "int", "id": "int"}, ROWS, processing="row")
    assert ok_rows(result) == [{"n": 1, "id": 1}, {"n": 1, "id": 2}, {"n": 1, "id": 3}]


def test_row_by_row_is_the_default() -> None:
    result = run_statement("return [{'n': len(INPUT_DATA)}]", {"n": "int"}, ROWS)
    assert ok_rows(result) == [{"n": 1}] * 3


def test_row_mode_concatenates_each_rows_output_in_input_order() -> None:
    statement = src(
        """
        row = INPUT_DATA[0]
        return [{'id': row['id'], 'k': k} for k in range(row['copies'])]
        """
    )
    rows = [{"id": 7, "copies": 2}, {"id": 8, "copies": 0}, {"id": 9, "copies": 3}]
    result = run_statement(statement, {"id": "int", "k": "int"}, rows, processing="row")
    assert [(r["id"], r["k"]) for r in ok_rows(result)] == [
        (7, 0), (7, 1), (9, 0), (9, 1), (9, 2),
    ]  # fmt: skip


def test_row_mode_without_input_rows_runs_nothing() -> None:
    # The statement would fail if it ran: zero input rows means zero executions.
    result = run_statement("raise ValueError('ran')", {"n": "int"}, [], processing="row")
    assert ok_rows(result) == []


def test_bulk_mode_runs_once_with_all_rows() -> None:
    statement = "return [{'n': len(INPUT_DATA), 'names': [r['name'] for r in INPUT_DATA]}]"
    result = run_statement(statement, {"n": "int", "names": "json"}, ROWS, processing="bulk")
    assert ok_rows(result) == [{"n": 3, "names": ["alpha", "beta", "gamma"]}]


def test_bulk_mode_without_input_rows_sees_an_empty_list() -> None:
    result = run_statement("return [{'n': len(INPUT_DATA)}]", {"n": "int"}, [], processing="bulk")
    assert ok_rows(result) == [{"n": 0}]


def test_input_values_arrive_unchanged() -> None:
    rows = [
        {"id": 1, "payload": {"a": [1, 2.5, None, True, "ü ✓"], "b": {"c": -3}}},
        {"id": 2, "payload": None},
    ]
    result = run_statement(
        "return INPUT_DATA", {"id": "int", "payload": "json?"}, rows, processing="bulk"
    )
    assert ok_rows(result) == rows


def test_statements_await_define_helpers_and_keep_multiline_strings() -> None:
    statement = src(
        '''
        text = """first
            indented
        last"""
        async def double(x):
            await sleep(0)
            return x * 2
        class Acc:
            def __init__(self):
                self.total = 0
        acc = Acc()
        for r in INPUT_DATA:
            acc.total += await double(r['id'])
        return [{'text': text, 'total': acc.total}]
        '''
    )
    result = run_statement(statement, {"text": "string", "total": "int"}, ROWS, processing="bulk")
    assert ok_rows(result) == [{"text": "first\n    indented\nlast", "total": 12}]


def test_pandas_records_come_back_as_plain_values() -> None:
    statement = src(
        """
        import pandas as pd
        df = pd.DataFrame(INPUT_DATA)
        df['id2'] = df['id'] * 2
        return df.to_dict('records')
        """
    )
    schema = {"id": "int", "name": "string", "id2": "int"}
    rows = ok_rows(run_statement(statement, schema, ROWS[:2], processing="bulk"))
    assert rows == [{"id": 1, "name": "alpha", "id2": 2}, {"id": 2, "name": "beta", "id2": 4}]
    assert all(type(row["id2"]) is int for row in rows)


def test_the_result_serialises_to_the_documented_keys() -> None:
    result = run_statement("return [{'n': 1}]", {"n": "int"}, processing="bulk")
    data = json.loads(json.dumps(result.to_json()))
    assert set(data) == {
        "verdict", "rows", "logs", "dropped_logs", "checkpoint", "checkpoint_changed", "error",
        "problems", "traceback",
    }  # fmt: skip
    assert data["verdict"] == "ok"
    assert data["rows"] == [{"n": 1}]
    assert data["problems"] == []
    assert result.duration_s >= 0


# --- data checkpoint -------------------------------------------------------------------------


def test_the_first_run_sees_no_checkpoint() -> None:
    statement = "return [{'first': DATA_CHECKPOINT is None}]"
    result = run_statement(statement, {"first": "bool"}, processing="bulk")
    assert ok_rows(result) == [{"first": True}]
    assert result.checkpoint is None
    assert result.checkpoint_changed is False


def test_the_checkpoint_is_the_last_output_rows_value_not_the_largest() -> None:
    statement = "return [{'id': 5}, {'id': 9}, {'id': 3}]"
    result = run_statement(
        statement, {"id": "int"}, processing="bulk", checkpoint=4, checkpoint_column="id"
    )
    assert ok_rows(result) == [{"id": 5}, {"id": 9}, {"id": 3}]
    assert result.checkpoint == 3
    assert result.checkpoint_changed is True


def test_in_row_mode_the_checkpoint_is_the_last_row_of_the_concatenated_output() -> None:
    statement = "i = INPUT_DATA[0]['id']\nreturn [{'id': i * 10}, {'id': i}]"
    rows = [{"id": 3}, {"id": 1}, {"id": 2}]
    result = run_statement(statement, {"id": "int"}, rows, checkpoint_column="id")
    assert [r["id"] for r in ok_rows(result)] == [30, 3, 10, 1, 20, 2]
    assert result.checkpoint == 2
    assert result.checkpoint_changed is True


def test_every_row_execution_sees_the_checkpoint() -> None:
    statement = "return [{'id': INPUT_DATA[0]['id'], 'page': DATA_CHECKPOINT['page']}]"
    result = run_statement(
        statement, {"id": "int", "page": "int"}, ROWS, processing="row", checkpoint={"page": 3}
    )
    assert ok_rows(result) == [{"id": 1, "page": 3}, {"id": 2, "page": 3}, {"id": 3, "page": 3}]


def test_checkpoints_chain_from_run_to_run() -> None:
    statement = src(
        """
        start = DATA_CHECKPOINT or 0
        return [{'id': i} for i in range(start + 1, start + 4)]
        """
    )
    first = run_statement(statement, {"id": "int"}, processing="bulk", checkpoint_column="id")
    assert [r["id"] for r in ok_rows(first)] == [1, 2, 3]
    second = run_statement(
        statement,
        {"id": "int"},
        processing="bulk",
        checkpoint=first.checkpoint,
        checkpoint_column="id",
    )
    assert [r["id"] for r in ok_rows(second)] == [4, 5, 6]
    assert second.checkpoint == 6


@pytest.mark.parametrize(
    ("column", "kind", "value"),
    [
        ("cursor", "string", "2024-01-02T03:04:05Z"),
        ("cursor", "json", {"page": 4, "ids": [1, 2]}),
        ("cursor", "float", 2.5),
    ],
    ids=["string", "json", "float"],
)
def test_the_checkpoint_keeps_the_columns_value(column: str, kind: str, value: Any) -> None:
    statement = f"return [{{'{column}': None}}, {{'{column}': {value!r}}}]"
    result = run_statement(
        statement, {column: f"{kind}?"}, processing="bulk", checkpoint_column=column
    )
    assert ok_rows(result)[-1] == {column: value}
    assert result.checkpoint == value
    assert result.checkpoint_changed is True


@pytest.mark.parametrize("before", [None, 7, "cursor-7"], ids=["first-run", "int", "string"])
def test_a_run_without_rows_leaves_the_checkpoint(before: Any) -> None:
    result = run_statement(
        "return []", {"id": "int"}, processing="bulk", checkpoint=before, checkpoint_column="id"
    )
    assert ok_rows(result) == []
    assert result.checkpoint == before
    assert result.checkpoint_changed is False


def test_without_a_checkpoint_column_the_checkpoint_stays() -> None:
    result = run_statement("return [{'id': 99}]", {"id": "int"}, processing="bulk", checkpoint=7)
    assert ok_rows(result) == [{"id": 99}]
    assert result.checkpoint == 7
    assert result.checkpoint_changed is False


@pytest.mark.parametrize(
    ("statement", "verdict"),
    [
        ("x = [{'id': 99}]\nraise ValueError('boom')", "failed"),
        ("return [{'id': 99}, {'id': 'not a number'}]", "failed"),
        ("log.error('upstream refused')\nreturn [{'id': 99}]", "failed"),
        ("return [{'id': 99}]\nx: int = 1", "rejected"),
    ],
    ids=["raises", "schema-problem", "log-error", "rejected"],
)
def test_a_run_that_is_not_ok_leaves_the_checkpoint(statement: str, verdict: str) -> None:
    result = run_statement(
        statement, {"id": "int"}, processing="bulk", checkpoint=7, checkpoint_column="id"
    )
    assert result.verdict == verdict
    assert result.rows == []
    assert result.checkpoint == 7
    assert result.checkpoint_changed is False


def test_a_debug_run_never_moves_the_checkpoint() -> None:
    result = run_statement(
        "return [{'id': 98}, {'id': 99}]",
        {"id": "int"},
        processing="bulk",
        checkpoint=7,
        checkpoint_column="id",
        debug=True,
    )
    assert ok_rows(result) == [{"id": 98}, {"id": 99}]
    # `checkpoint` shows the value this run would store (the field's definition); that it must
    # not be stored is what checkpoint_changed says.
    assert result.checkpoint == 99
    assert result.checkpoint_changed is False


# --- output schema ---------------------------------------------------------------------------

SCHEMA = {"amount": "int", "city": "string", "ratio": "float?", "flag": "bool?"}


def good(**changes: Any) -> dict[str, Any]:
    return {"amount": 1, "city": "Oslo", "ratio": 0.5, "flag": None, **changes}


SCHEMA_PROBLEMS = [
    pytest.param([good(), {"amount": 2, "ratio": None, "flag": None}], 2, "city", id="missing"),
    pytest.param([good(bogus_col=1)], 1, "bogus_col", id="unknown-column"),
    pytest.param([good(), good(), good(amount="three")], 3, "amount", id="wrong-type"),
    pytest.param([good(amount=True)], 1, "amount", id="bool-is-not-int"),
    pytest.param([good(amount=1.5)], 1, "amount", id="float-is-not-int"),
    pytest.param([good(), good(city=None)], 2, "city", id="null-in-non-nullable"),
    pytest.param([good(city=5)], 1, "city", id="int-is-not-string"),
    pytest.param([good(), good(ratio=float("nan"))], 2, "ratio", id="nan"),
    pytest.param([good(ratio=float("inf"))], 1, "ratio", id="infinity"),
    pytest.param([good(ratio="0.5")], 1, "ratio", id="string-is-not-float"),
    pytest.param([good(flag=1)], 1, "flag", id="int-is-not-bool"),
]


def statement_returning(rows: list[dict[str, Any]]) -> str:
    """A statement that builds `rows` (NaN and infinity spelled as float('nan') / float('inf'))."""
    text = repr(rows).replace("nan", "float('nan')").replace("inf", "float('inf')")
    return f"return {text}"


@pytest.mark.parametrize(("rows", "row", "column"), SCHEMA_PROBLEMS)
def test_a_schema_problem_names_the_row_and_the_column(
    rows: list[dict[str, Any]], row: int, column: str
) -> None:
    result = run_statement(statement_returning(rows), SCHEMA, processing="bulk")
    assert result.verdict == "failed"
    assert result.rows == []
    assert column in assert_names(result.error, row=row)
    assert any(
        column in problem and re.search(rf"(?i)\brow {row}\b", problem)
        for problem in result.problems
    ), result.problems


def test_every_schema_problem_is_listed() -> None:
    rows = [{"amount": 1, "ratio": None, "flag": None}, good(), good(amount="x")]
    result = run_statement(statement_returning(rows), SCHEMA, processing="bulk")
    assert result.verdict == "failed"
    assert len(result.problems) >= 2, result.problems
    assert any(re.search(r"\brow 1\b", p) and "city" in p for p in result.problems)
    assert any(re.search(r"\brow 3\b", p) and "amount" in p for p in result.problems)


def test_in_row_mode_rows_are_numbered_across_the_whole_output() -> None:
    statement = "i = INPUT_DATA[0]['id']\nreturn [{'amount': 'bad' if i == 2 else i}]"
    result = run_statement(statement, {"amount": "int"}, ROWS, processing="row")
    assert result.verdict == "failed"
    assert "amount" in assert_names(result.error, row=2)


@pytest.mark.parametrize(
    ("schema", "rows"),
    [
        ({"ratio": "float"}, [{"ratio": 1}, {"ratio": -2}]),
        ({"amount": "int?", "city": "string?"}, [{"amount": None, "city": None}]),
        ({"flag": "bool"}, [{"flag": True}, {"flag": False}]),
        ({"doc": "json"}, [{"doc": {"a": [1, {"b": None}], "c": "d"}}, {"doc": [1, 2.5, "x"]}]),
        ({"doc": "json"}, [{"doc": 3}, {"doc": "text"}, {"doc": True}]),
        ({"big": "int"}, [{"big": 2**62}, {"big": -(2**62)}]),
    ],
    ids=["int-for-float", "nulls-where-nullable", "bools", "json-nested", "json-scalars", "big"],
)
def test_values_the_schema_accepts(schema: dict[str, str], rows: list[dict[str, Any]]) -> None:
    result = run_statement(f"return {rows!r}", schema, processing="bulk")
    assert ok_rows(result) == rows


@pytest.mark.parametrize(
    ("statement", "row"),
    [
        ("x = 1", None),
        ("return {'out': 'a'}", None),
        ("return ({'out': 'a'},)", None),
        ("return 'out'", None),
        ("return (r for r in [{'out': 'a'}])", None),
        ("async def make():\n    return [{'out': 'a'}]\nreturn make()", None),
        ("import pandas as pd\nreturn pd.DataFrame([{'out': 'a'}])", None),
        ("return [1, 2, 3]", 1),
        ("return [{'out': 'a'}, ['out', 'b']]", 2),
        ("class D(dict):\n    pass\nreturn [{'out': 'a'}, D(out='x')]", 2),
        ("return [{'out': 'a'}, {1: 'x'}]", 2),
        ("class P:\n    pass\nreturn [{'out': P()}]", 1),
        ("return [{'out': sleep(0)}]", 1),
    ],
    ids=[
        "nothing", "dict", "tuple", "string", "generator", "coroutine", "dataframe", "scalars",
        "list-row", "dict-subclass", "non-string-key", "custom-object", "unawaited-coroutine",
    ],
)  # fmt: skip
def test_returns_that_are_not_a_list_of_plain_rows_fail(statement: str, row: int | None) -> None:
    result = run_statement(statement, {"out": "json?"}, processing="bulk")
    assert result.verdict == "failed"
    assert result.rows == []
    message = assert_names(result.error, row=row)
    if row is None:
        assert "list" in message, message


# --- type hints and syntax errors, in the user's line numbers --------------------------------

TYPE_HINTS = [
    ("x = 1\ny = 2\nz: int = 3\nreturn []", 3),
    ("x = 1\nz: int\nreturn []", 2),
    ("x = 1\ndef f(a: int):\n    return a\nreturn []", 2),
    ("x = 1\ny = 2\ndef f(a) -> list:\n    return [a]\nreturn []", 3),
    ("def f(*, k: int = 1):\n    return k\nreturn []", 1),
    ("x = 1\ndef f(*args: int):\n    return args\nreturn []", 2),
    ("x = 1\ndef f(**kw: int):\n    return kw\nreturn []", 2),
    ("def f(a: int, /):\n    return a\nreturn []", 1),
    ("x = 1\nasync def f(a: int):\n    return a\nreturn []", 2),
    ("class A:\n    y = 0\n    x: int = 0\nreturn []", 3),
    ("class A:\n    def m(self, a):\n        return a\n    def n(self, b: str):\n"
     "        return b\nreturn []", 4),
    ("def outer():\n    def inner(a):\n        v: list = [a]\n        return v\n"
     "    return inner\nreturn []", 3),
    ("if False:\n    x = 1\n    y: int = 2\nreturn []", 3),
    ("class A:\n    pass\na = A()\na.x: int = 1\nreturn []", 4),
    ('doc = """\none\ntwo\n"""\ny: int = 2\nreturn []', 5),
]  # fmt: skip


@pytest.mark.parametrize(
    ("statement", "line"),
    TYPE_HINTS,
    ids=[
        "annotated-assignment", "bare-annotation", "argument", "return", "keyword-only",
        "star-args", "star-star-kwargs", "positional-only", "async-def", "class-attribute",
        "method-argument", "nested-function", "unreached-branch", "attribute-target",
        "after-multiline-string",
    ],
)  # fmt: skip
def test_type_hints_are_rejected_at_the_users_line(statement: str, line: int) -> None:
    result = run_statement(statement, {"out": "string?"}, processing="bulk")
    assert result.verdict == "rejected"
    assert result.rows == []
    message = assert_names(result.error, line=line)
    assert "hint" in message.lower() or "annotation" in message.lower(), message


@pytest.mark.parametrize(
    ("statement", "line"),
    [
        ("x = 1\ny = 2\nz = = 3\nreturn []", 3),
        ('doc = """a\nb\nc"""\nx = 1 +\nreturn []', 4),
        ("x = 1\ny = 2\n    z = 3\nreturn []", 3),
        ("x = 1\ny = (1,\n", 2),
        ("x = 1\ny = 2 $ 3\nreturn []", 2),
        ("x = 1\nif x\n    y = 2\nreturn []", 2),
        ('x = 1\ns = """never\nclosed\n', 2),
    ],
    ids=[
        "invalid", "after-multiline-string", "unexpected-indent", "unclosed-bracket",
        "invalid-character", "missing-colon", "unterminated-string",
    ],
)  # fmt: skip
def test_syntax_errors_are_rejected_at_the_users_line(statement: str, line: int) -> None:
    result = run_statement(statement, {"out": "string?"}, processing="bulk")
    assert result.verdict == "rejected"
    assert_names(result.error, line=line)


def test_a_runtime_error_names_the_exception_and_the_users_line() -> None:
    statement = 'doc = """a\nb"""\nx = 1\ny = x / 0\nreturn []'
    result = run_statement(statement, {"out": "string?"}, processing="bulk")
    assert result.verdict == "failed"
    assert "ZeroDivisionError" in assert_names(result.error, line=4)


# --- imports (the seed's rule, literally) ----------------------------------------------------


def test_the_default_allow_list_is_the_seeds() -> None:
    assert sorted(DEFAULT_ALLOWED_IMPORTS) == sorted(SEED_ALLOWED_IMPORTS)
    assert sorted(ProcessorSettings().allowed_imports) == sorted(SEED_ALLOWED_IMPORTS)


def test_the_seeds_working_imports_work_together() -> None:
    statement = src(
        """
        import string
        import pandas as pd
        from json import dumps
        from xml import etree
        frame = pd.DataFrame(INPUT_DATA)
        return [{'out': dumps({'abc': string.ascii_lowercase[:3], 'n': len(frame)}),
                 'etree': etree is not None}]
        """
    )
    result = run_statement(statement, {"out": "string", "etree": "bool"}, ROWS, processing="bulk")
    assert ok_rows(result) == [{"out": '{"abc": "abc", "n": 3}', "etree": True}]


@pytest.mark.parametrize(
    "statement",
    [
        "import string",
        "import pandas as pd",
        "from json import dumps",
        "from xml import etree",
        "import passlib.hash",
        "from passlib.hash import sha256_crypt",
        "import matplotlib.pyplot as plt",
        "import jose.constants",
        "from jose import jwt",
        "import numpy as np",
        "from pandas import DataFrame",
        "import math, itertools, random",
    ],
)
def test_allowed_imports(statement: str) -> None:
    result = run_statement(
        f"{statement}\nreturn [{{'out': 'x'}}]", {"out": "string"}, processing="bulk"
    )
    assert ok_rows(result) == [{"out": "x"}]


@pytest.mark.parametrize(
    ("statement", "module"),
    [
        ("import os", "os"),
        ("import sys", "sys"),
        ("from xml.etree import ElementTree", "xml.etree"),
        ("import xml.etree", "xml.etree"),
        ("import passlib", "passlib"),
        ("from passlib import hash", "passlib"),
        ("import jose.jwt", "jose.jwt"),
        ("import math, os", "os"),
        ("import multiprocessing", "multiprocessing"),
        ("from os import path as p", "os"),
    ],
)
def test_imports_outside_the_rule_are_rejected_at_their_line(statement: str, module: str) -> None:
    result = run_statement(f"x = 1\n{statement}\nreturn []", {"out": "string?"}, processing="bulk")
    assert result.verdict == "rejected"
    message = assert_names(result.error, line=2)
    assert re.search(rf"(?<![\w.]){re.escape(module)}(?![\w])", message), message


def test_an_import_inside_a_function_that_never_runs_is_still_rejected() -> None:
    statement = "def never():\n    import os\n    return os\nreturn []"
    result = run_statement(statement, {"out": "string?"}, processing="bulk")
    assert result.verdict == "rejected"
    assert_names(result.error, line=2)


# --- arguments refused before anything runs --------------------------------------------------


def refused(**kwargs: Any) -> str:
    """The message of a call that must be refused: raised as ValueError/TypeError, or returned
    as a rejected result."""
    try:
        result = run_statement(**kwargs)
    except (ValueError, TypeError) as exc:
        return str(exc)
    assert result.verdict == "rejected"
    assert result.rows == []
    assert result.error
    return result.error


def test_an_unknown_schema_type_is_named() -> None:
    message = refused(statement="return []", schema={"amount": "integer"})
    assert "integer" in message
    assert "amount" in message
    assert "int" in message.replace("integer", "")  # names a type that does exist


def test_a_checkpoint_column_outside_the_schema_is_named() -> None:
    message = refused(statement="return []", schema={"id": "int"}, checkpoint_column="cursor")
    assert "cursor" in message


def test_an_unknown_processing_type_is_named() -> None:
    message = refused(statement="return []", schema={"id": "int"}, processing="batch")
    assert "batch" in message

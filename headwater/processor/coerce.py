"""Turn what a statement returned into plain JSON rows, or say exactly what is wrong with it.

Runs in the worker, where the Python objects still exist: once they are JSON, a tuple and a list
look alike. Only exact types pass (a dict subclass can run code while being serialised), plus
two coercions that make everyday code work: numpy scalars (`df.to_dict("records")` yields them)
become Python numbers via `.item()`, and dates and timestamps become ISO strings. The trusted
parent checks the decoded rows again; nothing here is relied on for safety.

This module is imported by the sandboxed worker only.
"""

from __future__ import annotations

import datetime
import math
import sys
from typing import Any

from headwater.processor.protocol import MAX_PROBLEMS

MAX_DEPTH = 32
_SCALARS = frozenset({str, int, bool, type(None)})


class OutputError(Exception):
    """The returned value breaks the statement contract; the message names row and column."""


class Problems:
    """Contract problems of one run: the first MAX_PROBLEMS kept, all of them counted."""

    __slots__ = ("count", "items")

    def __init__(self) -> None:
        self.items: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(message)

    def summary(self) -> str:
        """The first problem, and how many more there are."""
        more = self.count - 1
        plural = "s" if more > 1 else ""
        return self.items[0] + (f" (and {more} more problem{plural})" if more > 0 else "")


def coerce_rows(
    value: Any, *, first_row: int, problems: Problems, source: str = ""
) -> list[dict[str, Any]]:
    """Check and convert one execution's return value; every problem found goes to `problems`.

    Checking goes on past the first problem, so a debug run can show all of them. Rows that are
    not dicts are left out of the result; values that cannot be converted are left out of their
    row (the run fails anyway once there is a problem).

    Args:
        value: what the statement returned.
        first_row: 1-based number, over the whole run, of this execution's first output row.
        problems: where problems go, as "output row N, column 'c': ..." messages.
        source: appended to row references, e.g. " (from input row 3)" in row-by-row mode.
    """
    if type(value) is not list:
        problems.add(_describe_return(value, source))
        return []
    rows: list[dict[str, Any]] = []
    for offset, row in enumerate(value):
        where = f"output row {first_row + offset}{source}"
        if type(row) is not dict:
            problems.add(
                f"{where} is {_describe(row)}, not a dict; return a list of dicts such as "
                "[{'column': value}]"
            )
            continue
        clean: dict[str, Any] = {}
        for key, item in row.items():
            if type(key) is not str:
                problems.add(
                    f"{where}: column names must be strings, got {_describe(key)} {key!r:.60}"
                )
            elif type(item) in _SCALARS:
                clean[key] = item
            else:
                try:
                    clean[key] = _value(item, where, key, 0)
                except OutputError as exc:
                    problems.add(str(exc))
        rows.append(clean)
    return rows


def _value(item: Any, where: str, column: str, depth: int) -> Any:
    kind = type(item)
    if kind in _SCALARS:
        return item
    if kind is float:
        if not math.isfinite(item):
            raise OutputError(
                f"{where}, column '{column}': {item!r} is not a valid value (NaN and infinity "
                "are not JSON); use None for a missing number"
            )
        return item
    if depth >= MAX_DEPTH:
        raise OutputError(f"{where}, column '{column}': value nested deeper than {MAX_DEPTH}")
    if kind is list:
        return [_value(x, where, column, depth + 1) for x in item]
    if kind is dict:
        out = {}
        for key, x in item.items():
            if type(key) is not str:
                raise OutputError(
                    f"{where}, column '{column}': nested keys must be strings, got {_describe(key)}"
                )
            out[key] = _value(x, where, column, depth + 1)
        return out
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(item, numpy.generic):
        return _value(item.item(), where, column, depth + 1)
    if isinstance(item, datetime.date | datetime.time):
        if item != item:  # pandas.NaT, the missing timestamp
            raise OutputError(
                f"{where}, column '{column}': NaT (a missing timestamp) is not a value; use None"
            )
        text = item.isoformat()
        if type(text) is not str:
            raise OutputError(f"{where}, column '{column}': isoformat() did not return a string")
        return text
    raise OutputError(
        f"{where}, column '{column}': {_describe(item)} is not allowed; {_hint(item)}"
    )


def _describe_return(value: Any, source: str) -> str:
    where = f"the statement{source}"
    if value is None:
        return (
            f"{where} returned None: its last line must return a list of rows, e.g. "
            "`return [{'id': 1}]`"
        )
    return f"{where} returned {_describe(value)}, not a list of rows; {_hint(value)}"


def _describe(value: Any) -> str:
    kind = type(value)
    article = "an" if kind.__name__[:1].lower() in "aeiou" else "a"
    if isinstance(value, dict | list) and kind not in (dict, list):
        base = "dict" if isinstance(value, dict) else "list"
        return f"{article} {kind.__name__} (a subclass of {base})"
    return f"{article} {kind.__name__}"


def _hint(value: Any) -> str:
    name = type(value).__name__
    if name == "coroutine":
        return "did you forget `await`?"
    if name in ("generator", "async_generator", "map", "filter", "zip"):
        return "wrap it in list(...)"
    if name == "DataFrame":
        return "return df.to_dict('records')"
    if name == "Series":
        return "return a list of dicts, e.g. series.to_frame().to_dict('records')"
    if isinstance(value, tuple | set | frozenset):
        return "use a list instead"
    if type(value) is dict:
        return "wrap a single row in a list: [row]"
    if isinstance(value, dict | list):
        return f"return a plain {'dict' if isinstance(value, dict) else 'list'} instead"
    if isinstance(value, bytes | bytearray):
        return "decode it to a string (e.g. base64) first"
    return (
        "values may be None, bool, int, float, str, list and dict "
        "(numpy scalars and dates are converted)"
    )

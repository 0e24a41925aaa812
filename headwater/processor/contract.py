"""Layer 4, in the trusted parent: read the worker's report and hold the rows to the schema.

The report is untrusted input (the statement may control the worker entirely), so it is parsed
strictly: no NaN or Infinity, bounded nesting, every field of the expected type, every string
capped. Then each row is checked against the output schema: missing and unknown columns, the type
of each value (bool is not an int; an int is a fine float), and nulls in non-nullable columns.
Every problem names the 1-based output row, the input row it came from in row-by-row mode, and
the column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from headwater.processor.protocol import MAX_ERROR_CHARS, MAX_PROBLEMS, MAX_TRACEBACK_CHARS
from headwater.processor.result import Verdict
from headwater.processor.runtime import LEVELS, MAX_LOG_ENTRIES, MAX_MESSAGE_CHARS
from headwater.processor.schema import Column, OutputSchema

_INT64 = (-(2**63), 2**63 - 1)
_STATUSES: dict[Any, Verdict] = {"ok": "ok", "failed": "failed", "rejected": "rejected"}


class MalformedReport(Exception):
    """The worker's answer is not a report we can use."""


@dataclass(frozen=True)
class WorkerReport:
    status: Verdict
    rows: list[dict[str, Any]] = field(default_factory=list)
    row_sources: list[int] | None = None  # row mode: output rows produced per input row
    logs: list[dict[str, str]] = field(default_factory=list)
    dropped_logs: int = 0
    error: str | None = None
    traceback: str | None = None
    problems: list[str] = field(default_factory=list)


def read_report(payload: bytes) -> WorkerReport:
    """Parse and type-check the worker's JSON answer; raise MalformedReport if it is not one."""
    try:
        data = json.loads(payload, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedReport(f"invalid JSON ({str(exc)[:200]})") from None
    status = _STATUSES.get(data.get("status")) if isinstance(data, dict) else None
    if status is None:
        raise MalformedReport("no valid status")
    rows = data.get("rows") or []
    if not isinstance(rows, list) or any(type(r) is not dict for r in rows):
        raise MalformedReport("rows must be a list of objects")
    logs, dropped = _read_logs(data.get("logs") or [], data.get("dropped_logs", 0))
    problems = data.get("problems") or []
    if not isinstance(problems, list):
        problems = []
    return WorkerReport(
        status=status,
        rows=rows,
        row_sources=_read_sources(data.get("row_sources"), len(rows)),
        logs=logs,
        dropped_logs=dropped,
        error=_capped(data.get("error"), MAX_ERROR_CHARS),
        traceback=_capped(data.get("traceback"), MAX_TRACEBACK_CHARS),
        problems=[p[:MAX_ERROR_CHARS] for p in problems[:MAX_PROBLEMS] if isinstance(p, str)],
    )


def check_rows(
    rows: list[dict[str, Any]], schema: OutputSchema, row_sources: list[int] | None
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Validate rows against the schema: (rows in schema order, problems, problem count)."""
    origins = _origins(row_sources) if row_sources is not None else None
    known = set(schema.names)
    clean: list[dict[str, Any]] = []
    problems: list[str] = []
    count = 0
    for number, row in enumerate(rows, 1):
        where = f"output row {number}"
        if origins is not None:
            where += f" (from input row {origins[number - 1]})"
        found: list[str] = []
        for key in row:
            if key not in known:
                found.append(
                    f"{where}: column '{key}' is not in the output schema "
                    f"({', '.join(schema.names)}); remove it, or add it to the schema"
                )
        out: dict[str, Any] = {}
        for column in schema.columns:
            if column.name not in row:
                found.append(
                    f"{where}: column '{column.name}' is missing; every row needs every schema "
                    f"column ({', '.join(schema.names)})"
                )
                continue
            value, problem = _check_value(row[column.name], column)
            if problem:
                found.append(f"{where}, column '{column.name}': {problem}")
            out[column.name] = value
        count += len(found)
        problems.extend(found[: max(0, MAX_PROBLEMS - len(problems))])
        clean.append(out)
    return clean, problems, count


def _check_value(value: Any, column: Column) -> tuple[Any, str | None]:
    if value is None:
        if column.nullable:
            return None, None
        return None, (
            f"null (None) in a non-nullable column; return a {column.type} value, or declare "
            f"the column as '{column.type}?'"
        )
    kind = column.type
    if kind == "json":
        return value, None
    if type(value) is bool and kind != "bool":
        return value, f"expected {kind}, got bool {value}; bool is not accepted as {kind}"
    if kind == "int":
        if type(value) is not int:
            return value, _wrong(kind, value, "convert it with int(...)")
        if not _INT64[0] <= value <= _INT64[1]:
            return value, "the integer does not fit in 64 bits; return it as a string"
        return value, None
    if kind == "float":
        if type(value) is int:
            return float(value), None
        if type(value) is not float:
            return value, _wrong(kind, value, "convert it with float(...)")
        return value, None
    if kind == "bool":
        return value, None if type(value) is bool else _wrong(kind, value, "use True or False")
    return value, None if type(value) is str else _wrong(kind, value, "convert it with str(...)")


def _wrong(kind: str, value: Any, fix: str) -> str:
    shown = json.dumps(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"expected {kind}, got {_json_type(value)} {shown}; {fix}, or change the output schema"


def _json_type(value: Any) -> str:
    names = {str: "string", int: "int", float: "float", bool: "bool", list: "list", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _origins(row_sources: list[int]) -> list[int]:
    origins: list[int] = []
    for index, produced in enumerate(row_sources, 1):
        origins.extend([index] * produced)
    return origins


def _read_sources(value: Any, row_count: int) -> list[int] | None:
    if not isinstance(value, list) or any(type(n) is not int or n < 0 for n in value):
        return None
    return value if sum(value) == row_count else None


def _read_logs(entries: Any, dropped: Any) -> tuple[list[dict[str, str]], int]:
    if not isinstance(entries, list):
        raise MalformedReport("logs must be a list")
    extra = dropped if type(dropped) is int and dropped >= 0 else 0
    logs: list[dict[str, str]] = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in LEVELS):
            raise MalformedReport("log entries must be [level, message]")
        if len(logs) >= MAX_LOG_ENTRIES or not isinstance(entry[1], str):
            extra += 1
            continue
        logs.append({"level": entry[0], "message": entry[1][: MAX_MESSAGE_CHARS + 64]})
    return logs, extra


def _capped(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")

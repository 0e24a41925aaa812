"""Arrow columns as PostgreSQL columns: the type a column is created with, the Python values
psycopg sends (by COPY, into the table or a staging table), and the server's errors in one
line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from headwater.writes.errors import WriteError

ORDER = "_headwater_row_order"


def pg_type(component: str, field: pa.Field) -> str:
    """The PostgreSQL column type an Arrow column is created with.

    Raises:
        WriteError: the type has no sensible PostgreSQL counterpart (names the column).
    """
    t = field.type
    if pat.is_dictionary(t):
        t = t.value_type
    simple = [
        (pat.is_null, "TEXT"),
        (pat.is_boolean, "BOOLEAN"),
        (lambda x: pat.is_int8(x) or pat.is_int16(x) or pat.is_uint8(x), "SMALLINT"),
        (lambda x: pat.is_int32(x) or pat.is_uint16(x), "INTEGER"),
        (lambda x: pat.is_int64(x) or pat.is_uint32(x), "BIGINT"),
        (pat.is_uint64, "NUMERIC(20, 0)"),
        (lambda x: pat.is_float16(x) or pat.is_float32(x), "REAL"),
        (pat.is_float64, "DOUBLE PRECISION"),
        (lambda x: pat.is_string(x) or pat.is_large_string(x), "TEXT"),
        (
            lambda x: pat.is_binary(x) or pat.is_large_binary(x) or pat.is_fixed_size_binary(x),
            "BYTEA",
        ),
        (pat.is_date, "DATE"),
        (pat.is_time, "TIME"),
        (pat.is_duration, "INTERVAL"),
        (lambda x: pat.is_nested(x) and not pat.is_union(x), "JSONB"),  # lists, structs, maps
    ]
    for test, name in simple:
        if test(t):
            return name
    if pat.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pat.is_decimal(t):
        return f"NUMERIC({t.precision}, {t.scale})"
    raise WriteError(
        f"write connector '{component}': column '{field.name}' has Arrow type {t}, which has "
        "no PostgreSQL column type (fix: cast it to a plain type in an upstream transform)"
    )


def python_values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """A column as the Python values psycopg sends: nested values as JSON text, times at
    microseconds (PostgreSQL's precision)."""
    t = column.type
    if pat.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if (pat.is_timestamp(t) or pat.is_time64(t) or pat.is_duration(t)) and t.unit == "ns":
        target = (
            pa.timestamp("us", t.tz)
            if pat.is_timestamp(t)
            else pa.time64("us")
            if pat.is_time64(t)
            else pa.duration("us")
        )
        column = column.cast(target, safe=False)
    elif pat.is_float16(t):
        column = column.cast(pa.float32())
    values: list[Any] = column.to_pylist()
    if pat.is_nested(t) and not pat.is_union(t):
        return [None if v is None else json.dumps(v, default=str) for v in values]
    return values


def pg_message(exc: BaseException) -> str:
    """A database error in one line or two: its message, the column and the COPY line."""
    diag = getattr(exc, "diag", None)
    if diag is None or not diag.message_primary:
        return f"{type(exc).__name__}: {str(exc).strip()}"
    parts = [diag.message_primary]
    if diag.column_name:
        parts.append(f"column '{diag.column_name}'")
    if diag.message_detail:
        parts.append(diag.message_detail)
    if diag.context:
        parts.append(diag.context.splitlines()[0])
    return "; ".join(parts)


def copy_rows(
    cur: Any,
    table: Any,
    columns: Sequence[str],
    batches: Iterable[pa.RecordBatch],
    *,
    numbered: bool = False,
) -> int:
    """COPY `batches` into `table` (a psycopg `sql.Identifier`); with `numbered`, each row also
    gets its position in the partition in the column `ORDER`. Returns the rows sent."""
    from psycopg import sql

    names = sql.SQL(", ").join(map(sql.Identifier, [*columns, *([ORDER] if numbered else [])]))
    rows = 0
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, names)) as copy:
        for batch in batches:
            values = [python_values(column) for column in batch.columns]
            if numbered:
                values.append(list(range(rows, rows + batch.num_rows)))
            for row in zip(*values, strict=True):
                copy.write_row(row)
            rows += batch.num_rows
    return rows


def stage_rows(
    cur: Any, stage: str, table: Any, columns: Sequence[str], batches: Iterable[pa.RecordBatch]
) -> int:
    """COPY a partition's rows into a new temporary table `stage` (dropped at commit), with
    the column types of `table` and each row's position in `ORDER`. Returns the rows."""
    from psycopg import sql

    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {}, 0::BIGINT AS {} FROM {} WITH NO DATA"
        ).format(
            sql.Identifier(stage),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(ORDER),
            table,
        )
    )
    return copy_rows(cur, sql.Identifier(stage), columns, batches, numbered=True)

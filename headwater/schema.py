"""Schemas: Arrow schemas from what connectors declare, merging partitions, conforming batches.

Merging follows one policy everywhere (inside a partition, across partitions):
- a column missing on either side is kept, nullable;
- a `null`-typed column (all values None so far) takes the other side's type;
- lossless widening is always allowed: int8 -> int64, float32 -> float64, string -> large_string,
  a coarser timestamp unit -> a finer one;
- with `widen=True` also int -> float and any primitive -> string;
- anything else is a conflict, reported with the column, the old and the new type.

Reading is lenient (`merge(..., lenient=True)`): committed partitions may disagree where a
re-read failed and left an older version behind, and a component must stay readable, so such a
column is read as text (nested values as JSON) rather than failing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from headwater.errors import SchemaError, Where

_TYPE_NAMES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "integer": pa.int64(),
    "bigint": pa.int64(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "int8": pa.int8(),
    "float": pa.float64(),
    "double": pa.float64(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "str": pa.string(),
    "string": pa.string(),
    "text": pa.string(),
    "utf8": pa.string(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "bytes": pa.binary(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "datetime": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
_PY_TYPES: dict[type, pa.DataType] = {
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    bool: pa.bool_(),
    bytes: pa.binary(),
    datetime.datetime: pa.timestamp("us"),
    datetime.date: pa.date32(),
}
_TS_UNITS = ("s", "ms", "us", "ns")

EMPTY = pa.schema([])


def as_arrow_type(value: Any, column: str, where: Where) -> pa.DataType:
    """One column type from a declaration: a pyarrow type, a Python type, or a name like 'int'."""
    if isinstance(value, pa.DataType):
        return value
    if isinstance(value, type) and value in _PY_TYPES:
        return _PY_TYPES[value]
    if isinstance(value, str) and value.strip().lower() in _TYPE_NAMES:
        return _TYPE_NAMES[value.strip().lower()]
    raise SchemaError(
        f"column '{column}' has type {value!r}, which Headwater does not know",
        where,
        hint=f"use a pyarrow type (pa.int64()) or one of: {', '.join(sorted(_TYPE_NAMES))}",
    )


def as_arrow_schema(value: Any, where: Where) -> pa.Schema:
    """An Arrow schema from `infer_schema`'s answer: a pyarrow Schema or a {column: type} map."""
    if isinstance(value, pa.Schema):
        return value
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str) or not k]
        if bad:
            raise SchemaError(f"column names must be non-empty strings, got {bad[0]!r}", where)
        return pa.schema([(name, as_arrow_type(t, name, where)) for name, t in value.items()])
    if type(value).__module__.startswith("pyspark"):
        raise SchemaError(
            f"returned a pyspark {type(value).__name__}, which is not a schema",
            where,
            hint="return a pyspark StructType, a pyarrow Schema or a {column: type} dict, such "
            "as {'id': 'int'}",
        )
    raise SchemaError(
        f"must return a pyarrow Schema or a {{column: type}} dict, got {type(value).__name__}",
        where,
        hint="return pa.schema([('id', pa.int64())]) or {'id': 'int', 'name': 'string'}",
    )


def _widened(old: pa.DataType, new: pa.DataType, widen: bool) -> pa.DataType | None:
    """The type both `old` and `new` values fit, or None when the policy forbids it."""
    if old.equals(new):
        return old
    if pat.is_null(old):
        return new
    if pat.is_null(new):
        return old
    if pat.is_integer(old) and pat.is_integer(new):
        signed = pat.is_signed_integer(old) or pat.is_signed_integer(new)
        bits = max(old.bit_width, new.bit_width)
        if signed and not (pat.is_signed_integer(old) and pat.is_signed_integer(new)):
            unsigned = old if pat.is_unsigned_integer(old) else new
            bits = max(bits, unsigned.bit_width * 2)  # a uintN needs a wider signed type
            if bits > 64:  # uint64 with a signed type: no integer type holds both
                return pa.float64() if widen else None
        return _int_type(bits, signed)
    if pat.is_floating(old) and pat.is_floating(new):
        return old if old.bit_width >= new.bit_width else new
    if {old, new} <= {pa.string(), pa.large_string()}:
        return pa.large_string()
    if {old, new} <= {pa.binary(), pa.large_binary()}:
        return pa.large_binary()
    if pat.is_timestamp(old) and pat.is_timestamp(new) and old.tz == new.tz:
        unit = max(old.unit, new.unit, key=_TS_UNITS.index)
        return pa.timestamp(unit, tz=old.tz)
    if not widen:
        return None
    numeric = (pat.is_integer(old) or pat.is_floating(old)) and (
        pat.is_integer(new) or pat.is_floating(new)
    )
    if numeric:
        return pa.float64()
    primitive = not pat.is_nested(old) and not pat.is_nested(new)
    if primitive and (pat.is_string(old) or pat.is_string(new)):
        return pa.string()
    return None


def _int_type(bits: int, signed: bool) -> pa.DataType:
    table = {
        (8, True): pa.int8(),
        (16, True): pa.int16(),
        (32, True): pa.int32(),
        (64, True): pa.int64(),
        (8, False): pa.uint8(),
        (16, False): pa.uint16(),
        (32, False): pa.uint32(),
        (64, False): pa.uint64(),
    }
    return table[(bits, signed)]


def merge(
    old: pa.Schema,
    new: pa.Schema,
    *,
    widen: bool,
    where: Where = Where(),
    lenient: bool = False,
) -> pa.Schema:
    """The schema that holds both `old` and `new`, or a SchemaError naming the conflict
    (with `lenient`, a conflicting column becomes a string column instead)."""
    fields: list[pa.Field] = []
    new_names = set(new.names)
    for f in old:
        if f.name not in new_names:
            fields.append(f.with_nullable(True))
            continue
        other = new.field(f.name)
        merged = _widened(f.type, other.type, widen or lenient)
        if merged is None and lenient:
            merged = pa.string()
        if merged is None:
            hint = (
                "make the connector return one type for this column, or allow widening "
                "(int -> float, anything -> string) with the widen_types setting"
                if not widen
                else "make the connector return one type for this column"
            )
            raise SchemaError(
                f"column '{f.name}' was {f.type} and is now {other.type}", where, hint=hint
            )
        fields.append(pa.field(f.name, merged, nullable=f.nullable or other.nullable))
    old_names = set(old.names)
    fields.extend(f.with_nullable(True) for f in new if f.name not in old_names)
    return pa.schema(fields)


def conform(
    batch: pa.RecordBatch, schema: pa.Schema, where: Where = Where(), *, reading: bool = False
) -> pa.RecordBatch:
    """`batch` laid out as `schema`: columns in its order, missing ones null, types cast.
    `reading` committed data never fails: a widened number may round (as SQL does)."""
    if batch.schema.equals(schema):
        return batch
    extra = [name for name in batch.schema.names if name not in schema.names]
    if extra:
        raise SchemaError(
            f"column(s) {', '.join(extra)} are not in the schema "
            f"({', '.join(schema.names) or 'no columns'})",
            where,
            hint="declare them in infer_schema, or stop returning them",
        )
    columns = []
    for f in schema:
        index = batch.schema.get_field_index(f.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, f.type))
            continue
        column = batch.column(index)
        if not column.type.equals(f.type):
            try:
                column = column.cast(f.type, safe=not reading)
            except pa.ArrowNotImplementedError as exc:
                if not pat.is_string(f.type):
                    raise SchemaError(
                        f"column '{f.name}' of type {column.type} cannot be cast to {f.type}",
                        where,
                        hint="return values of the declared type, or change the declared type",
                    ) from exc
                column = as_text(column)
            except pa.ArrowInvalid as exc:
                raise SchemaError(
                    f"column '{f.name}' of type {column.type} cannot be cast to {f.type}: {exc}",
                    where,
                    hint="return values of the declared type, or change the declared type",
                ) from exc
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def as_text(column: pa.Array) -> pa.Array:
    """Values Arrow cannot cast to string (lists, structs) as JSON text."""
    return pa.array(
        [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()],
        pa.string(),
    )


def serialize(schema: pa.Schema) -> bytes:
    return bytes(schema.serialize())


def deserialize(data: bytes) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(data))


def schema_id(schema: pa.Schema) -> str:
    """A content address for a schema: partitions with equal schemas share one catalog row."""
    return hashlib.sha256(serialize(schema)).hexdigest()[:32]


def describe(schema: pa.Schema) -> list[dict[str, Any]]:
    """Columns as plain data, for tables and JSON output."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]

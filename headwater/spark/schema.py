"""Spark schemas <-> Arrow schemas, with Headwater's errors for the types one side lacks.

Spark's TimestampType is an instant: in Arrow it is `timestamp[us, tz=UTC]`, whatever the
session's time zone. Arrow's unsigned integers have no Spark type: they widen to the next
signed one (uint64 to decimal(20, 0)), which holds every value.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.types as pat
from pyspark.errors import PySparkException
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from headwater.errors import SchemaError, Where

_UNSIGNED = {
    pa.uint8(): pa.int16(),
    pa.uint16(): pa.int32(),
    pa.uint32(): pa.int64(),
    pa.uint64(): pa.decimal128(20, 0),
}


def arrow_schema(struct: object, where: Where = Where()) -> pa.Schema:
    """The Arrow schema a pyspark StructType (from `infer_schema`, or a DataFrame) stands for."""
    if not isinstance(struct, StructType):
        raise SchemaError(
            f"returned a pyspark {type(struct).__name__}; a Spark schema must be a StructType",
            where,
            hint="return StructType([StructField('id', LongType()), ...]), or an Arrow schema",
        )
    try:
        return to_arrow_schema(struct, timezone="UTC")
    except (PySparkException, TypeError, AssertionError) as exc:
        raise SchemaError(
            f"the Spark schema {struct.simpleString()} has no Arrow equivalent: {exc}",
            where,
            hint="use Spark types with an Arrow equivalent (numbers, strings, dates, "
            "timestamps, arrays, structs, maps)",
        ) from None


def spark_schema(schema: pa.Schema, where: Where = Where()) -> StructType:
    """The Spark schema of a stored component (unsigned integers widened, see above)."""
    try:
        return from_arrow_schema(sparkable(schema), prefer_timestamp_ntz=True)
    except (PySparkException, TypeError) as exc:
        raise SchemaError(
            f"the component's schema cannot be read into Spark: {exc}",
            where,
            hint="read it with Workspace.read_arrow or DuckDB (headwater query) instead",
        ) from None


def sparkable(schema: pa.Schema) -> pa.Schema:
    """`schema` with the types Spark lacks replaced by ones that hold the same values."""
    return pa.schema([f.with_type(_sparkable_type(f.type)) for f in schema])


def _sparkable_type(t: pa.DataType) -> pa.DataType:
    if pat.is_unsigned_integer(t):
        return _UNSIGNED[t]
    if pat.is_dictionary(t):
        return _sparkable_type(t.value_type)
    if pat.is_large_list(t) or pat.is_list(t):
        return pa.list_(t.value_field.with_type(_sparkable_type(t.value_type)))
    if pat.is_struct(t):
        return pa.struct([f.with_type(_sparkable_type(f.type)) for f in t])
    return t

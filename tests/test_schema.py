"""The schema policy: merging partitions' schemas and conforming batches."""

from __future__ import annotations

import pyarrow as pa
import pytest

from headwater import schema as schemas
from headwater.errors import SchemaError, Where


def s(**types: pa.DataType) -> pa.Schema:
    return pa.schema(list(types.items()))


@pytest.mark.parametrize(
    ("old", "new", "widen", "merged"),
    [
        (pa.int64(), pa.int64(), False, pa.int64()),
        (pa.null(), pa.string(), False, pa.string()),
        (pa.string(), pa.null(), False, pa.string()),
        (pa.int8(), pa.int32(), False, pa.int32()),
        (pa.uint8(), pa.int8(), False, pa.int16()),
        (pa.uint32(), pa.int64(), False, pa.int64()),
        (pa.uint64(), pa.int8(), True, pa.float64()),
        (pa.float32(), pa.float64(), False, pa.float64()),
        (pa.string(), pa.large_string(), False, pa.large_string()),
        (pa.timestamp("s"), pa.timestamp("us"), False, pa.timestamp("us")),
        (pa.int64(), pa.float64(), True, pa.float64()),
        (pa.float32(), pa.int8(), True, pa.float64()),
        (pa.bool_(), pa.string(), True, pa.string()),
        (pa.string(), pa.date32(), True, pa.string()),
    ],
)
def test_merge_widens(old, new, widen, merged) -> None:
    result = schemas.merge(s(c=old), s(c=new), widen=widen)
    assert result.field("c").type == merged


@pytest.mark.parametrize(
    ("old", "new", "widen"),
    [
        (pa.int64(), pa.float64(), False),
        (pa.int64(), pa.string(), False),
        (pa.timestamp("us"), pa.timestamp("us", tz="UTC"), False),
        (pa.list_(pa.int64()), pa.string(), True),  # nested values do not become strings
        (pa.bool_(), pa.int64(), True),
        (pa.uint64(), pa.int64(), False),  # no integer type holds both
    ],
)
def test_merge_conflicts_name_column_and_types(old, new, widen) -> None:
    with pytest.raises(SchemaError) as info:
        schemas.merge(s(c=old), s(c=new), widen=widen, where=Where(partition="p1"))
    text = str(info.value)
    assert f"column 'c' was {old} and is now {new}" in text
    assert "partition 'p1'" in text


def test_merge_keeps_order_and_makes_missing_columns_nullable() -> None:
    old = pa.schema([pa.field("a", pa.int64(), nullable=False), ("b", pa.string())])
    new = pa.schema([("c", pa.bool_()), pa.field("a", pa.int64(), nullable=False)])
    merged = schemas.merge(old, new, widen=False)
    assert merged.names == ["a", "b", "c"]
    assert [f.nullable for f in merged] == [False, True, True]


def test_conform_adds_nulls_casts_and_orders() -> None:
    batch = pa.RecordBatch.from_pylist([{"b": 1, "a": "x"}])
    target = s(a=pa.string(), b=pa.float64(), c=pa.int64())
    result = schemas.conform(batch, target)
    assert result.schema == target
    assert result.to_pylist() == [{"a": "x", "b": 1.0, "c": None}]


def test_conform_rejects_undeclared_columns() -> None:
    batch = pa.RecordBatch.from_pylist([{"a": 1, "zz": 2}])
    with pytest.raises(SchemaError, match="column\\(s\\) zz are not in the schema"):
        schemas.conform(batch, s(a=pa.int64()))


def test_conform_names_a_column_that_cannot_be_cast() -> None:
    batch = pa.RecordBatch.from_pylist([{"a": "seven"}])
    with pytest.raises(SchemaError, match="column 'a' of type string cannot be cast to int64"):
        schemas.conform(batch, s(a=pa.int64()))


def test_declared_schemas() -> None:
    where = Where(component="c", function="infer_schema")
    declared = schemas.as_arrow_schema({"a": "int", "b": float, "c": pa.date32()}, where)
    assert declared.types == [pa.int64(), pa.float64(), pa.date32()]
    with pytest.raises(SchemaError, match="column 'a' has type 'integerish'"):
        schemas.as_arrow_schema({"a": "integerish"}, where)
    with pytest.raises(SchemaError, match="must return a pyarrow Schema"):
        schemas.as_arrow_schema(["a"], where)


def test_serialization_round_trip_and_ids() -> None:
    schema = s(a=pa.int64(), b=pa.timestamp("ms", tz="UTC"), c=pa.list_(pa.string()))
    assert schemas.deserialize(schemas.serialize(schema)) == schema
    assert schemas.schema_id(schema) == schemas.schema_id(
        schemas.deserialize(schemas.serialize(schema))
    )
    assert schemas.schema_id(schema) != schemas.schema_id(s(a=pa.int64()))

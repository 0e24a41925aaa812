"""The one row a Spark task returns per partition: what it landed, or why it failed.

Tasks never fail for a partition's own sake: the outcome travels back as data, so a failing
partition fails alone and Spark's job (and every other partition's) goes on. The columns a
person reads in Spark are plain; the error also travels pickled, so the driver records exactly
the error the local executors would (its class, place, fix and the connector's traceback).
"""

from __future__ import annotations

import pickle
from typing import Any

import pyarrow as pa
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from headwater import schema as schemas
from headwater.engine.land import Landed, NotLanded, Outcome
from headwater.engine.listing import ListedObject
from headwater.errors import ConnectorError, HeadwaterError
from headwater.store import WrittenPartition

STATUS = StructType(
    [
        StructField("name", StringType()),
        StructField("landed", BooleanType()),
        StructField("files", ArrayType(StringType())),
        StructField("rows", LongType()),
        StructField("bytes", LongType()),
        StructField("attempts", IntegerType()),
        StructField("seconds", DoubleType()),
        StructField("schema", BinaryType()),
        StructField("error", StringType()),
        StructField("error_pickle", BinaryType()),
    ]
)
# Exactly the Arrow layout Spark expects for STATUS (it checks a data source's batches).
STATUS_ARROW = to_arrow_schema(STATUS, timezone="UTC")


def status_batch(name: str, outcome: Outcome | WrittenPartition | HeadwaterError) -> pa.RecordBatch:
    """The status row of partition `name`: a landed outcome, bare written files (one task's
    share of a DataFrame), or an error."""
    row: dict[str, Any] = {"name": name, "attempts": 1, "seconds": 0.0}
    if isinstance(outcome, Landed):
        row.update(attempts=outcome.attempts, seconds=outcome.seconds)
        outcome = outcome.written
    elif isinstance(outcome, NotLanded):
        row.update(attempts=outcome.attempts)
        outcome = outcome.error
    if isinstance(outcome, WrittenPartition):
        row.update(
            landed=True,
            files=outcome.files,
            rows=outcome.rows,
            bytes=outcome.bytes,
            schema=schemas.serialize(outcome.schema),
        )
    else:
        row.update(landed=False, files=[], rows=0, bytes=0, error=str(outcome))
        row["error_pickle"] = _pickled(outcome)
    return pa.RecordBatch.from_pylist([row], schema=STATUS_ARROW)


def _pickled(error: HeadwaterError) -> bytes:
    try:
        return pickle.dumps(error)
    except Exception:  # an error carrying something unpicklable: keep its words
        return pickle.dumps(HeadwaterError(str(error)))


def written(row: Any) -> WrittenPartition:
    """The files a landed status row names."""
    return WrittenPartition(
        list(row["files"]), row["rows"], row["bytes"], schemas.deserialize(bytes(row["schema"]))
    )


def error(row: Any) -> HeadwaterError:
    """The error a failed status row carries."""
    found = pickle.loads(bytes(row["error_pickle"]))
    if isinstance(found, HeadwaterError):
        return found
    return ConnectorError(str(row["error"]))


def outcome(row: Any, obj: ListedObject) -> Outcome:
    """The outcome a status row reports for `obj`."""
    if row["landed"]:
        return Landed(obj, written(row), row["attempts"], row["seconds"])
    return NotLanded(obj, error(row), row["attempts"])

"""Landing partitions of a `read_spark_dataframe` connector.

The driver calls `read_spark_dataframe(spark, context, metadata)`, which returns a (lazy)
DataFrame; Spark tasks then write its Arrow batches to the store, each task its own Parquet
file(s) of the partition, and return status rows. The DataFrame's schema (or `infer_schema`'s)
is the partition's declared schema, so an empty partition still records its columns.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from headwater import schema as schemas
from headwater.connectors.partitioned import PartitionedConnector
from headwater.engine.boundary import guard
from headwater.engine.executors import LandJob
from headwater.engine.land import Landed, NotLanded, Outcome
from headwater.engine.listing import ListedObject
from headwater.errors import ConnectorError, HeadwaterError, StoreError, Where
from headwater.secrets import scrub
from headwater.spark import status
from headwater.spark.errors import summary
from headwater.spark.schema import arrow_schema
from headwater.spark.status import STATUS, status_batch
from headwater.store import Store, WrittenPartition

READ = "read_spark_dataframe"


def land_dataframe(
    spark: SparkSession,
    connector: PartitionedConnector,
    context: Any,
    obj: ListedObject,
    job: LandJob,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Land `obj` from the DataFrame the connector returns, trying up to
    `settings.retry.attempts` times, as `land` does for the other read functions."""
    where = job.where.at(partition=obj.name)
    store = Store(job.store_url)
    started = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            written = _land(spark, connector, context, obj, job, store, where)
            return Landed(obj, written, attempt, time.perf_counter() - started)
        except HeadwaterError as exc:
            retry = isinstance(exc, ConnectorError) and exc.retryable
            if not retry or attempt >= job.settings.retry.attempts:
                return NotLanded(obj, exc, attempt)
            sleep(job.settings.retry.wait(attempt))
        except Exception as exc:  # a fault in Headwater itself: this partition fails alone
            error = ConnectorError(
                scrub(f"internal error while landing: {type(exc).__name__}: {exc}", job.credential),
                where,
                detail=scrub("".join(traceback.format_exception(exc)), job.credential),
            )
            return NotLanded(obj, error, attempt)


def _land(
    spark: SparkSession,
    connector: PartitionedConnector,
    context: Any,
    obj: ListedObject,
    job: LandJob,
    store: Store,
    where: Where,
) -> WrittenPartition:
    at_read = where.at(function=READ)
    with guard(at_read, job.credential):
        frame = connector.read(spark, context, obj.metadata)
        if not isinstance(frame, DataFrame):
            raise ConnectorError(
                f"returned a {type(frame).__name__}; {READ} must return a pyspark DataFrame",
                hint="return spark.createDataFrame(rows, schema), or a DataFrame from spark.read",
            )
        struct = frame.schema  # analyses the plan: a bad column fails here, in the connector
    if connector.infer_schema is not None:
        with guard(where.at(function="infer_schema"), job.credential):
            answer = connector.infer_schema(context, obj.metadata)
            declared = schemas.as_arrow_schema(answer, where)
    else:
        declared = arrow_schema(struct, at_read)
    write = functools.partial(
        write_batches, job.store_url, job.component_id, job.settings.widen_types, at_read, declared
    )
    try:
        rows = frame.mapInArrow(write, STATUS).collect()
    except Exception as exc:
        raise ConnectorError(
            f"the Spark job computing its DataFrame failed: {scrub(summary(exc), job.credential)}",
            at_read,
            hint=f"the error is in the DataFrame {READ}() returned, or in the system it reads",
            retryable=True,
            detail=scrub(str(exc), job.credential),
        ) from None
    parts = [status.written(row) for row in rows if row["landed"]]
    failed = [row for row in rows if not row["landed"]]
    if failed:
        store.delete([f for part in parts for f in part.files])
        raise status.error(failed[0])
    if not any(part.files for part in parts):  # no rows at all: record the columns
        return store.writer(
            job.component_id, widen=job.settings.widen_types, where=at_read, declared=declared
        ).finish()
    return WrittenPartition(
        [f for part in parts for f in part.files],
        sum(part.rows for part in parts),
        sum(part.bytes for part in parts),
        declared,
    )


def write_batches(
    store_url: str,
    component_id: str,
    widen: bool,
    where: Where,
    declared: pa.Schema,
    batches: Iterator[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """In a Spark task: write this task's share of the DataFrame, yield its one status row.
    A failure of Headwater's (a schema conflict, the store) is reported in the row; one of the
    DataFrame's own computation fails the task, and with it the Spark job."""
    name = where.partition or ""
    store = Store(store_url)
    writer = store.writer(component_id, widen=widen, where=where, declared=declared)
    outcome: WrittenPartition | HeadwaterError
    try:
        for batch in batches:
            if batch.num_rows:
                with _store_faults():
                    writer.write(batch)
        if writer.rows:
            with _store_faults():
                outcome = writer.finish()
        else:
            writer.abort()
            outcome = WrittenPartition([], 0, 0, declared)
    except HeadwaterError as exc:
        writer.abort()
        outcome = exc
    except BaseException:
        writer.abort()
        raise
    yield status_batch(name, outcome)


@contextmanager
def _store_faults() -> Iterator[None]:
    """Errors of the store are Headwater's, not the connector's: keep them apart."""
    try:
        yield
    except HeadwaterError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"writing partition data to the store failed: {exc}") from exc

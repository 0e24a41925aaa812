"""The refresh plan as a Spark Python Data Source: one Spark partition per listed object.

Each Spark task loads the connector (once per Python worker and run), calls its read function
through the same `land` as the local executors (retries, schema checks, Parquet written under a
temporary name and renamed into place in the store), and yields one status row. The driver
commits; a task never touches the catalog.

The job travels inside a data source class made for the refresh (Spark pickles the class by
value), not in the reader's options: options are strings Spark shows in plans and its UI, and
the job carries the connector's credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import StructType

from headwater.engine.executors import LandJob, land_with, load_connector, open_context
from headwater.engine.land import Outcome
from headwater.engine.listing import ListedObject
from headwater.errors import HeadwaterError, StoreError
from headwater.spark.status import STATUS, status_batch
from headwater.store import Store


class LandSource(DataSource):
    """Reads the partitions of one refresh; `job` and `objects` are set per refresh."""

    short: ClassVar[str]
    job: ClassVar[LandJob]
    objects: ClassVar[list[ListedObject]]

    @classmethod
    def name(cls) -> str:
        return cls.short

    def schema(self) -> StructType:
        return STATUS

    def reader(self, schema: StructType) -> DataSourceReader:
        return LandReader(self.job, self.objects)


class LandReader(DataSourceReader):
    def __init__(self, job: LandJob, objects: list[ListedObject]) -> None:
        self.job = job
        self.objects = objects

    def partitions(self) -> list[InputPartition]:
        return [InputPartition(obj) for obj in self.objects]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        obj: ListedObject = partition.value
        yield status_batch(obj.name, land_in_task(self.job, obj))


def plan_frame(spark: SparkSession, job: LandJob, objects: Sequence[ListedObject]) -> DataFrame:
    """A DataFrame of status rows, one per object, in the order of `objects`.

    The data source is registered under the component's name, replacing the previous run's
    (Spark cannot unregister one): a long-lived process keeps one per component, not one per
    run. The lease makes this run the component's only one, and the plan is made here.
    """
    name = register(spark, LandSource, f"land_{job.component_id}", job=job, objects=list(objects))
    return spark.read.format(name).load()


def register(spark: SparkSession, base: type[DataSource], key: str, **attributes: Any) -> str:
    """Register a subclass of `base` carrying `attributes` as `headwater_<key>`; returns the
    name. Each DataFrame keeps the source it was loaded from, whatever is registered later."""
    short = "headwater_" + re.sub(r"[^A-Za-z0-9_]", "_", key)
    source = type(f"{base.__name__}_{short}", (base,), {"short": short, **attributes})
    spark.dataSource.register(source)
    return short


# What a Python worker keeps between the tasks of one run: the connector, its context, the store.
_worker: dict[str, Any] = {}


def land_in_task(job: LandJob, obj: ListedObject) -> Outcome:
    """Land `obj` in this Python worker. Never raises: a failure is the partition's outcome."""
    key = (job.store_url, job.component_id, job.where.run_id)
    if _worker.get("key") != key:
        _worker.clear()
        _worker.update(_open(job), key=key)
    return land_with(_worker, job, obj)


def _open(job: LandJob) -> dict[str, Any]:
    try:
        connector = load_connector(job.source, job.where.component or "", "spark")
        context = open_context(connector, job.credential, job.where)
    except HeadwaterError as exc:
        return {"error": exc}
    try:
        store = Store(job.store_url)
    except Exception as exc:
        error = StoreError(
            f"the store {job.store_url!r} cannot be opened on this Spark executor: "
            f"{type(exc).__name__}: {exc} (fix: put the store where the driver and every "
            "executor reach it, e.g. s3://bucket/prefix or a shared mount)"
        )
        return {"error": error}
    return {"connector": connector, "context": context, "store": store}

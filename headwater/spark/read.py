"""A stored component read back into Spark, for pipelines that go on in Spark.

The DataFrame's partitions are the component's committed Parquet files, read by Spark tasks
through the store (so any store Headwater writes, s3:// included, reads the same way) and laid
out as the component's schema, as `Workspace.read_arrow` does. It names the files committed
when it was made: a later refresh may replace them, so read again (or cache) after one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import StructType

from headwater import schema as schemas
from headwater.errors import Where
from headwater.spark.schema import arrow_schema, spark_schema
from headwater.spark.source import register
from headwater.store import Store

if TYPE_CHECKING:
    from headwater.workspace import Workspace


def read_component(spark: SparkSession, workspace: Workspace, name: str) -> DataFrame:
    """A component's committed rows as a Spark DataFrame.

    Args:
        spark: the session to read in; its executors must reach the workspace's store.
        workspace: the workspace holding the component.
        name: the component.

    Raises:
        NotFoundError: there is no such component.
        SchemaError: a column has a type Spark cannot hold.

    Example:
        >>> read_component(spark, ws, "orders").groupBy("day").count()   # doctest: +SKIP
    """
    record = workspace.catalog.component(name)
    stored = workspace.catalog.component_schema(record.id)
    struct = spark_schema(stored, Where(component=name))
    files = [f for p in workspace.catalog.partitions(record.id) for f in p.files]
    short = register(
        spark,
        ComponentSource,
        f"read_{uuid.uuid4().hex[:16]}",  # a DataFrame per call, however many are alive
        store_url=workspace.store.url,
        files=files,
        stored=stored,
        struct=struct,
    )
    return spark.read.format(short).load()


class ComponentSource(DataSource):
    """Reads one component's files; the attributes are set per read."""

    short: ClassVar[str]
    store_url: ClassVar[str]
    files: ClassVar[list[str]]
    stored: ClassVar[pa.Schema]
    struct: ClassVar[StructType]

    @classmethod
    def name(cls) -> str:
        return cls.short

    def schema(self) -> StructType:
        return self.struct

    def reader(self, schema: StructType) -> DataSourceReader:
        return ComponentReader(self.store_url, self.files, self.stored, self.struct)


class ComponentReader(DataSourceReader):
    def __init__(
        self, store_url: str, files: list[str], stored: pa.Schema, struct: StructType
    ) -> None:
        self.store_url = store_url
        self.files = files
        self.stored = stored
        self.struct = struct

    def partitions(self) -> list[InputPartition]:
        return [InputPartition(f) for f in self.files]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        if partition.value is None:  # Spark's one partition of a component with no files
            return
        store = Store(self.store_url)
        target = arrow_schema(self.struct)  # exactly what Spark checks the batches against
        for batch in store.read_batches([partition.value], self.stored):
            yield schemas.conform(batch, target, reading=True)

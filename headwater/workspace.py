"""The Python API: a workspace is a catalog plus a store; refresh components, read them back."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater import query as queries
from headwater.catalog import (
    Catalog,
    Checkpoint,
    ComponentRecord,
    Failure,
    Lineage,
    PartitionRecord,
    RunRecord,
)
from headwater.component import ComponentSettings, check_component_name, component_name_from
from headwater.connectors.loading import ConnectorSource
from headwater.engine.refresh import Progress, RunResult, refresh, utcnow
from headwater.errors import Where
from headwater.settings import Settings, SparkSettings
from headwater.store import Store, WrittenPartition

if TYPE_CHECKING:
    import pandas


class Workspace:
    """A Headwater home: the catalog and the store, and what can be done with them.

    Args:
        settings: where the catalog and store live; by default from the environment
            (`HEADWATER_HOME`, else `./.headwater`).
        home: shorthand for a home directory, when `settings` is not given.
        clock: the time source (tests pin it).

    Example:
        >>> with Workspace(home=tmp) as ws:                           # doctest: +SKIP
        ...     ws.refresh("my_connector.py").raise_for_status()
        ...     ws.read_pandas("my_connector").head()
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        home: str | Path | None = None,
        clock: Callable[[], datetime.datetime] = utcnow,
    ) -> None:
        self.settings = settings or Settings.from_env(home=home)
        self.clock = clock
        self.catalog = Catalog.open(self.settings.catalog_url)
        try:
            self.store = Store(self.settings.store_url)
        except BaseException:
            self.catalog.close()
            raise

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.catalog.close()

    # -- refreshing ---------------------------------------------------------------------------

    def refresh(
        self,
        connector: str | Path | ConnectorSource,
        *,
        component: str | None = None,
        settings: ComponentSettings | None = None,
        credential: str | None = None,
        progress: Progress | None = None,
        spark: SparkSettings | None = None,
        **changes: Any,
    ) -> RunResult:
        """Refresh a component from a partitioned connector: list, plan, read what changed.

        Args:
            connector: a .py file, an importable module name, or a ConnectorSource.
            component: the component's name (default: from the file or module name).
            settings: all settings; by default the component's stored ones (or defaults).
            credential: the secret string handed to the connector's `context(credentials)`.
            spark: where Spark starts for `executor="spark"` when no session runs yet
                (default: the workspace's settings, from `HEADWATER_SPARK_*`); not stored.
            **changes: individual settings to change, e.g. `parser="csv"`, `concurrency=8`.

        Returns:
            The run's result; `result.raise_for_status()` raises when any partition failed.

        Raises:
            ConnectorLoadError: the connector is unusable (nothing was touched).
            ComponentBusyError: another refresh of this component is running.
        """
        source = (
            connector
            if isinstance(connector, ConnectorSource)
            else ConnectorSource.resolve(connector)
        )
        name = check_component_name(component) if component else component_name_from(source.stem)
        effective = (settings or self.stored_settings(name)).updated(**changes)
        return refresh(
            self.catalog,
            self.store,
            source,
            name,
            effective,
            credential=credential,
            clock=self.clock,
            progress=progress,
            spark=spark or self.settings.spark,
        )

    def land_table(
        self,
        component: ComponentRecord,
        partition: str,
        table: pa.Table,
        *,
        fingerprint: str,
        run_id: int,
        checkpoint: Checkpoint | None = None,
        holder: str | None = None,
        lineage: Sequence[Lineage] | None = None,
    ) -> WrittenPartition:
        """Write `table` as one partition of `component` and commit it, with `checkpoint` and
        `lineage` in the same transaction (and only while `holder` holds the lease, when
        given). Files of a version it replaced are deleted after the commit. Used by runs that
        produce whole tables (streams, processors, transforms) rather than reading listed
        objects."""
        started = time.perf_counter()
        writer = self.store.writer(
            component.id, widen=False, where=Where(component=component.name), declared=table.schema
        )
        for batch in table.to_batches():
            writer.write(batch)
        written = writer.finish()
        replaced = self.catalog.commit_partition(
            component.id,
            name=partition,
            fingerprint=fingerprint,
            code_version=component.code_version,
            schema=written.schema,
            files=written.files,
            row_count=written.rows,
            byte_size=written.bytes,
            run_id=run_id,
            attempts=1,
            read_seconds=time.perf_counter() - started,
            now=self.clock(),
            checkpoint=checkpoint,
            holder=holder,
            lineage=lineage,
        )
        self.store.delete(replaced)
        return written

    def stored_settings(self, name: str) -> ComponentSettings:
        """The settings a component was last refreshed with (defaults for a new one)."""
        known = {c.name: c for c in self.catalog.components()}
        if name in known:
            return ComponentSettings.from_json(known[name].settings)
        return ComponentSettings()

    # -- reading ------------------------------------------------------------------------------

    def read_batches(self, component: str) -> Iterator[pa.RecordBatch]:
        """A component's committed rows as Arrow batches, in partition order (bounded memory)."""
        record = self.catalog.component(component)
        schema = self.catalog.component_schema(record.id)
        files = [f for p in self.catalog.partitions(record.id) for f in p.files]
        return self.store.read_batches(files, schema)

    def read_arrow(self, component: str) -> pa.Table:
        """A component's committed rows as one Arrow table."""
        record = self.catalog.component(component)
        schema = self.catalog.component_schema(record.id)
        return pa.Table.from_batches(list(self.read_batches(component)), schema=schema)

    def read_pandas(self, component: str) -> pandas.DataFrame:
        """A component's committed rows as a pandas DataFrame."""
        frame: pandas.DataFrame = self.read_arrow(component).to_pandas()
        return frame

    def query(self, sql: str) -> pa.Table:
        """Run SQL (DuckDB) over committed data; each component is a view named after it.

        Example:
            >>> ws.query("SELECT count(*) AS n FROM my_connector")    # doctest: +SKIP
        """
        con = queries.connect(self.catalog, self.store, sql)
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    # -- looking around -----------------------------------------------------------------------

    def components(self) -> list[ComponentRecord]:
        return self.catalog.components()

    def partitions(self, component: str) -> list[PartitionRecord]:
        return self.catalog.partitions(self.catalog.component(component).id)

    def schema(self, component: str) -> pa.Schema:
        return self.catalog.component_schema(self.catalog.component(component).id)

    def runs(self, component: str | None = None, limit: int = 20) -> list[RunRecord]:
        component_id = self.catalog.component(component).id if component else None
        return self.catalog.runs(component_id, limit)

    def run(self, run_id: int) -> RunRecord:
        return self.catalog.run(run_id)

    def failures(self, run_id: int) -> list[Failure]:
        return self.catalog.run_failures(run_id)

"""Executors: where partition reads run. Threads by default, processes for CPU-bound connectors,
Spark tasks (`headwater.spark`, imported only when chosen) to scale out.

An executor takes the partitions to read and yields each one's outcome as it finishes;
committing stays with the refresh, in one thread, so the catalog has one writer per component.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any, Protocol

from headwater.component import ComponentSettings
from headwater.connectors.loading import ConnectorSource
from headwater.connectors.partitioned import PartitionedConnector, from_module
from headwater.engine.boundary import guard
from headwater.engine.land import NotLanded, Outcome, land
from headwater.engine.listing import ListedObject
from headwater.errors import (
    ConnectorError,
    ConnectorLoadError,
    HeadwaterError,
    SettingsError,
    Where,
)
from headwater.settings import SparkSettings
from headwater.store import Store


@dataclass(frozen=True)
class LandJob:
    """What every read of one run needs; it pickles, so worker processes can rebuild it."""

    source: ConnectorSource
    settings: ComponentSettings
    store_url: str
    component_id: str
    where: Where
    credential: str | None
    spark: SparkSettings | None = None  # None: from the environment, when Spark starts

    def __repr__(self) -> str:  # the credential must never reach a log through a repr
        return f"LandJob(component={self.where.component!r}, run={self.where.run_id})"


class Executor(Protocol):
    def land_all(self, objects: Sequence[ListedObject]) -> Iterator[Outcome]: ...


def load_connector(source: ConnectorSource, component: str, executor: str) -> PartitionedConnector:
    """Load a partitioned connector as `executor` will run it: `read_spark_dataframe` only on
    Spark, and a pyspark StructType from `infer_schema` taken as the Arrow schema it means."""
    if executor == "spark" and not _has_pyspark():
        raise SettingsError(
            f"component '{component}' runs on the Spark executor, which needs pyspark, and "
            "pyspark is not installed; install the Spark extra (pip install 'headwater[spark]') "
            "or choose --executor thread or process"
        )
    where = Where(component=component)
    try:
        module = source.load()
    except ConnectorLoadError as exc:
        raise exc.located(where) from exc.__cause__
    try:
        connector = from_module(module, source, where)
    except ConnectorLoadError as exc:
        # from_module refuses read_spark_dataframe: it needs Spark, which only we can check.
        if exc.where.function != "read_spark_dataframe" or not _has_pyspark():
            raise
        if executor != "spark":
            raise ConnectorLoadError(
                "read_spark_dataframe(spark, context, metadata) returns a Spark DataFrame, so it "
                f"runs on the Spark executor only, and this component's executor is {executor!r}",
                exc.where,
                hint="run it with --executor spark (executor='spark'), or read with read_arrow, "
                "read_pandas_dataframe, read_records or read_bytes",
            ) from None
        from headwater.spark.connector import spark_dataframe_connector

        connector = spark_dataframe_connector(module, source, where)
    return _arrow_schemas(connector)


def _has_pyspark() -> bool:
    return importlib.util.find_spec("pyspark") is not None


def _arrow_schemas(connector: PartitionedConnector) -> PartitionedConnector:
    infer = connector.infer_schema
    if infer is None:
        return connector

    def infer_schema(context: Any, metadata: Any) -> Any:
        answer = infer(context, metadata)
        if type(answer).__module__.startswith("pyspark"):  # so pyspark is already imported
            from headwater.spark.schema import arrow_schema

            return arrow_schema(answer)
        return answer

    return replace(connector, infer_schema=infer_schema)


def open_context(connector: PartitionedConnector, credential: str | None, where: Where) -> Any:
    """Call the connector's `context(credentials)` (None when it defines none)."""
    if connector.context is None:
        return None
    with guard(where.at(function="context"), credential):
        return connector.context(credential)


class ThreadExecutor:
    """Reads partitions on a thread pool, sharing the refresh's connector and context."""

    def __init__(self, job: LandJob, connector: PartitionedConnector, context: Any) -> None:
        self.job = job
        self.connector = connector
        self.context = context
        self.store = Store(job.store_url)

    def land_all(self, objects: Sequence[ListedObject]) -> Iterator[Outcome]:
        job = self.job
        pool = ThreadPoolExecutor(job.settings.concurrency, thread_name_prefix="headwater-read")
        finished = False
        try:
            futures = [
                pool.submit(
                    land,
                    self.connector,
                    self.context,
                    obj,
                    job.settings,
                    self.store,
                    job.component_id,
                    job.where,
                    job.credential,
                )
                for obj in objects
            ]
            for future in as_completed(futures):
                yield future.result()
            finished = True
        finally:
            # On an early exit (Ctrl-C, a lost lease) pending reads are cancelled, not awaited.
            pool.shutdown(wait=finished, cancel_futures=True)


class ProcessExecutor:
    """Reads partitions in worker processes; each worker loads the connector and calls
    `context(credentials)` once. Only partition outcomes (file names, counts) come back."""

    def __init__(self, job: LandJob) -> None:
        self.job = job

    def land_all(self, objects: Sequence[ListedObject]) -> Iterator[Outcome]:
        pool = ProcessPoolExecutor(
            self.job.settings.concurrency,
            mp_context=_worker_context(),
            initializer=_init_worker,
            initargs=(self.job,),
        )
        finished = False
        try:
            futures: dict[Future[Outcome], ListedObject] = {
                pool.submit(_land_in_worker, obj): obj for obj in objects
            }
            for future in as_completed(futures):
                yield _outcome(future, futures[future], self.job.where)
            finished = True
        finally:
            pool.shutdown(wait=finished, cancel_futures=True)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers fork from a server process that imported the engine once (fork from this
    process is unsafe: it has threads). Spawn, where forkserver is missing, imports per worker."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "headwater.engine.executors", "pyarrow", "pandas"])
    return context


def _outcome(future: Future[Outcome], obj: ListedObject, where: Where) -> Outcome:
    try:
        return future.result()
    except BrokenProcessPool:
        error = ConnectorError(
            "the worker process reading this partition died (killed, crashed in native code, "
            "or the main module failed when the worker imported it)",
            where.at(partition=obj.name),
            hint="worker processes import your main module: keep a script's code under "
            "`if __name__ == '__main__':`; or read with executor=thread to see the error",
        )
    except Exception as exc:  # metadata that does not pickle, for one
        error = ConnectorError(
            f"the partition could not be sent to or from a worker process: {exc}",
            where.at(partition=obj.name),
            hint="keep metadata and returned values plain (str, int, dict), or use executor=thread",
        )
    return NotLanded(obj, error, 0)


_worker: dict[str, Any] = {}


def _init_worker(job: LandJob) -> None:
    try:
        connector = load_connector(job.source, job.where.component or "", job.settings.executor)
        context = open_context(connector, job.credential, job.where)
        _worker.update(job=job, connector=connector, context=context, store=Store(job.store_url))
    except HeadwaterError as exc:
        _worker.update(job=job, error=exc)


def _land_in_worker(obj: ListedObject) -> Outcome:
    return land_with(_worker, _worker["job"], obj)


def land_with(worker: dict[str, Any], job: LandJob, obj: ListedObject) -> Outcome:
    """Land `obj` in a worker process with what it opened once for the run (`connector`,
    `context`, `store`), or fail it with the error opening them raised (`error`)."""
    if "error" in worker:
        return NotLanded(obj, worker["error"], 0)
    return land(
        worker["connector"],
        worker["context"],
        obj,
        job.settings,
        worker["store"],
        job.component_id,
        job.where,
        job.credential,
    )


def executor_for(job: LandJob, connector: PartitionedConnector, context: Any) -> Executor:
    if job.settings.executor == "spark":
        from headwater.spark.executor import SparkExecutor

        return SparkExecutor(job, connector, context)
    if job.settings.executor == "process":
        return ProcessExecutor(job)
    return ThreadExecutor(job, connector, context)

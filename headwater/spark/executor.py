"""The Spark executor: the plan's partitions read as tasks of Spark jobs, committed by the driver.

One Spark job per partition, `settings.concurrency` of them in flight from driver threads, all
over one planned data source (`source.plan_frame`). Outcomes come back as each job ends, so the
refresh commits a partition as soon as it lands, as with the local executors, and a partition
whose task died (a killed or crashed Python worker) fails alone: only its job fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from typing import Any

from pyspark import RDD, SparkContext

from headwater.connectors.partitioned import PartitionedConnector
from headwater.engine.executors import LandJob
from headwater.engine.land import Landed, NotLanded, Outcome
from headwater.engine.listing import ListedObject
from headwater.errors import ConnectorError, StoreError
from headwater.secrets import scrub
from headwater.spark import status
from headwater.spark.errors import summary
from headwater.spark.frames import land_dataframe
from headwater.spark.session import session
from headwater.spark.source import plan_frame
from headwater.store import Store


class SparkExecutor:
    """Reads partitions as Spark tasks; see the module's docstring."""

    def __init__(self, job: LandJob, connector: PartitionedConnector, context: Any) -> None:
        self.job = job
        self.connector = connector
        self.context = context  # the driver's; tasks open their own
        self.store = Store(job.store_url)

    def land_all(self, objects: Sequence[ListedObject]) -> Iterator[Outcome]:
        if not objects:
            return  # nothing to read: no JVM, no job
        spark = session(self.job.spark)
        sc = spark.sparkContext
        work: list[tuple[ListedObject, Callable[[], Outcome]]]
        if self.connector.interface == "spark_dataframe":
            work = [
                (obj, partial(land_dataframe, spark, self.connector, self.context, obj, self.job))
                for obj in objects
            ]
        else:
            try:
                rdd = plan_frame(spark, self.job, objects).rdd
            except Exception as exc:  # as the process executor: each partition fails with it
                for obj in objects:
                    yield NotLanded(obj, self._not_planned(exc, obj), 0)
                return
            work = [
                (obj, partial(self._land_partition, sc, rdd, i, obj))
                for i, obj in enumerate(objects)
            ]
        yield from self._run(sc, work)

    def _run(
        self, sc: SparkContext, work: list[tuple[ListedObject, Callable[[], Outcome]]]
    ) -> Iterator[Outcome]:
        where = self.job.where
        group = f"headwater-{where.component}-run{where.run_id}-{uuid.uuid4().hex[:8]}"
        pool = ThreadPoolExecutor(
            self.job.settings.concurrency, thread_name_prefix="headwater-spark"
        )
        finished = False
        try:
            futures = [pool.submit(self._in_group, sc, group, obj, fn) for obj, fn in work]
            for future in as_completed(futures):
                yield self._visible(future.result())
            finished = True
        finally:
            if not finished:  # Ctrl-C, a lost lease: stop the jobs, do not wait for them
                sc.cancelJobGroup(group)
            pool.shutdown(wait=finished, cancel_futures=True)

    def _in_group(
        self, sc: SparkContext, group: str, obj: ListedObject, fn: Callable[[], Outcome]
    ) -> Outcome:
        where = self.job.where
        # Job groups are per thread: the Spark UI names the partition, cancelling stops them all.
        description = f"headwater: component '{where.component}', run {where.run_id}, '{obj.name}'"
        sc.setJobGroup(group, description[:200], interruptOnCancel=True)
        return fn()

    def _land_partition(
        self, sc: SparkContext, rdd: RDD[Any], index: int, obj: ListedObject
    ) -> Outcome:
        try:
            rows = sc.runJob(rdd, _rows, partitions=[index])
        except Exception as exc:
            return NotLanded(obj, self._task_failed(exc, obj), 1)
        if len(rows) != 1 or rows[0]["name"] != obj.name:
            names = [row["name"] for row in rows]
            error = ConnectorError(
                f"internal error: the Spark task for this partition returned {names}",
                self.job.where.at(partition=obj.name),
            )
            return NotLanded(obj, error, 1)
        return status.outcome(rows[0], obj)

    def _task_failed(self, exc: Exception, obj: ListedObject) -> ConnectorError:
        secret = self.job.credential
        return ConnectorError(
            scrub(f"the Spark task reading this partition failed: {summary(exc)}", secret),
            self.job.where.at(partition=obj.name, function=self.connector.read_function),
            hint="a Python worker that crashed or was killed (out of memory, native code, "
            "os._exit) fails its task; the Spark executor's log says why",
            detail=scrub(str(exc), secret),
        )

    def _not_planned(self, exc: Exception, obj: ListedObject) -> ConnectorError:
        return ConnectorError(
            scrub(
                f"Spark could not plan the job reading this partition: {summary(exc)}",
                self.job.credential,
            ),
            self.job.where.at(partition=obj.name),
            hint="the listed objects' metadata travels to Spark's Python processes: keep it "
            "plain (str, int, float, bool, dict, list)",
            detail=scrub(str(exc), self.job.credential),
        )

    def _visible(self, outcome: Outcome) -> Outcome:
        """The driver commits only files it can see: a store path that is local to each
        executor (not shared) would otherwise commit files that are not there."""
        if not isinstance(outcome, Landed):
            return outcome
        missing = [f for f in outcome.written.files if not self.store.fs.exists(self.store.path(f))]
        if not missing:
            return outcome
        error = StoreError(
            f"partition '{outcome.obj.name}': a Spark executor wrote {missing[0]} to the store "
            f"{self.store.url!r}, and the driver does not see it there (fix: put the store "
            "where the driver and every executor reach the same files, e.g. s3://bucket/prefix "
            "or a shared mount)"
        )
        return NotLanded(outcome.obj, error, outcome.attempts)


def _rows(rows: Iterable[Any]) -> list[Any]:
    return list(rows)

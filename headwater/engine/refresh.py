"""A refresh: lease the component, list, plan, land what changed, commit partition by partition.

Crash safety comes from the order of steps. Files are renamed into place before their catalog
row commits; old files are deleted only after the commit that stops naming them; removed
partitions are dropped in one transaction at the end. Killed at any point, the catalog names only
complete files, and the next refresh (which closes the dead run and sweeps orphans) finishes
the work.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from headwater import failpoints
from headwater import schema as schemas
from headwater.catalog import Catalog, Failure, StoredPartition
from headwater.catalog.catalog import read_schema
from headwater.component import ComponentSettings, code_version
from headwater.connectors.loading import ConnectorSource
from headwater.connectors.partitioned import PartitionedConnector
from headwater.engine.executors import LandJob, executor_for, load_connector, open_context
from headwater.engine.land import Landed, NotLanded
from headwater.engine.listing import list_all
from headwater.engine.plan import Plan, plan
from headwater.errors import (
    ConnectorError,
    ConnectorLoadError,
    HeadwaterError,
    RefreshFailed,
    SchemaError,
    Where,
)
from headwater.secrets import scrub
from headwater.settings import SparkSettings
from headwater.store import Store

log = logging.getLogger("headwater.refresh")
Clock = Any  # Callable[[], datetime.datetime]; kept loose so tests can pass any callable


class Progress(Protocol):
    """What a refresh reports while it runs (the CLI draws a progress bar from it)."""

    def planned(self, plan: Plan) -> None: ...
    def landed(self, name: str, rows: int, size: int) -> None: ...
    def failed(self, name: str, message: str) -> None: ...


class NoProgress:
    def planned(self, plan: Plan) -> None:
        pass

    def landed(self, name: str, rows: int, size: int) -> None:
        pass

    def failed(self, name: str, message: str) -> None:
        pass


@dataclass
class RunResult:
    """The outcome of one refresh: the plan's counts, what landed, and every failure by name."""

    run_id: int
    component: str
    status: str = "running"
    counts: dict[str, int] = field(default_factory=dict)
    landed: int = 0
    failed: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    recoded: int = 0
    failures: list[Failure] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "component": self.component,
            "status": self.status,
            "plan": self.counts,
            "reprocessed_for_code_change": self.recoded,
            "landed": self.landed,
            "failed": self.failed,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "failures": [
                {
                    "partition": f.partition,
                    "function": f.function,
                    "message": f.message,
                    "attempts": f.attempts,
                }
                for f in self.failures
            ],
        }

    def raise_for_status(self) -> RunResult:
        """Raise RefreshFailed unless every partition landed; returns self otherwise."""
        if not self.ok:
            first = self.error or (_describe(self.failures[0]) if self.failures else self.status)
            raise RefreshFailed(
                f"refresh of '{self.component}' (run {self.run_id}) ended {self.status}: "
                f"{self.failed} partition(s) failed; first: {first}"
            )
        return self


def refresh(
    catalog: Catalog,
    store: Store,
    source: ConnectorSource,
    name: str,
    settings: ComponentSettings,
    *,
    credential: str | None,
    clock: Clock,
    progress: Progress | None = None,
    spark: SparkSettings | None = None,
) -> RunResult:
    """Refresh component `name` from `source`. Raises ConnectorLoadError for an unusable
    connector (before anything is touched); every later failure is recorded in the run.
    `spark` says where to start Spark when the executor is "spark" and no session runs yet
    (default: from the environment)."""
    progress = progress or NoProgress()
    connector = load_connector(source, name, settings.executor)
    _check_parser(connector, settings, Where(component=name))
    version = code_version(source.text, settings)
    component = catalog.ensure_component(
        name,
        kind="partitioned",
        source_ref=source.ref,
        settings=settings.to_json(),
        code_version=version,
        now=clock(),
    )
    started = time.perf_counter()
    with catalog.lease(component, clock) as lease:
        catalog.update_component(
            component.id,
            source_ref=source.ref,
            settings=settings.to_json(),
            code_version=version,
            now=clock(),
        )
        # Spark may run a task twice (a retry after a lost executor, speculation): the files
        # of an attempt no outcome reported are orphans too, so a Spark run sweeps them all.
        sweep_orphans(catalog, store, component.id, clock, always=settings.executor == "spark")
        run_id = catalog.start_run(
            component.id, executor=settings.executor, holder=lease.holder, now=clock()
        )
        where = Where(component=name, run_id=run_id)
        result = RunResult(run_id=run_id, component=name)
        try:
            context = open_context(connector, credential, where)
            listed = list_all(connector, context, where, credential)
            stored = catalog.stored_partitions(component.id)
            the_plan = plan(
                listed,
                stored,
                version,
                reprocess_on_code_change=settings.reprocess_on_code_change,
            )
            result.counts = the_plan.counts()
            result.recoded = the_plan.recoded
            progress.planned(the_plan)
            kept = set(the_plan.unchanged)
            if settings.keep_removed:
                kept.update(the_plan.removed)
            baseline = _baseline_schema(catalog, stored, kept)
            job = LandJob(source, settings, store.url, component.id, where, credential, spark)
            committer = _Committer(
                catalog,
                store,
                component.id,
                version,
                run_id,
                lease.holder,
                baseline,
                settings.widen_types,
                clock,
                where.at(function=connector.read_function),
            )
            for outcome in executor_for(job, connector, context).land_all(the_plan.to_read):
                lease.check()
                if isinstance(outcome, Landed):
                    outcome = committer.commit(outcome)
                if isinstance(outcome, Landed):
                    result.landed += 1
                    result.rows += outcome.written.rows
                    result.bytes += outcome.written.bytes
                    progress.landed(outcome.obj.name, outcome.written.rows, outcome.written.bytes)
                else:
                    result.failed += 1
                    result.failures.append(_failure(outcome))
                    progress.failed(outcome.obj.name, _message(outcome.error))
            if the_plan.removed and not settings.keep_removed:
                failpoints.hit("refresh.before_drop")
                dropped = catalog.drop_partitions(component.id, the_plan.removed, lease.holder)
                _delete_quietly(store, dropped)
            result.status = _status(result)
        except ConnectorError as exc:  # context or listing failed: nothing was planned
            result.status = "failed"
            result.error = str(exc)
            result.failures.append(Failure(None, exc.where.function, exc.explained, exc.detail, 1))
        except KeyboardInterrupt:
            _finish(catalog, result, "interrupted", started, clock)
            raise
        except BaseException as exc:
            result.error = scrub(f"{type(exc).__name__}: {exc}", credential)
            _finish(catalog, result, "failed", started, clock)
            raise
        _finish(catalog, result, result.status, started, clock)
        return result


@dataclass
class _Committer:
    """Commits landed partitions one by one, checking each against the component's schema."""

    catalog: Catalog
    store: Store
    component_id: str
    version: str
    run_id: int
    holder: str  # the lease this run holds: commits happen only while it does
    schema: pa.Schema
    widen: bool
    clock: Clock
    where: Where

    def commit(self, landed: Landed) -> Landed | NotLanded:
        written = landed.written
        try:
            merged = schemas.merge(
                self.schema,
                written.schema,
                widen=self.widen,
                where=self.where.at(partition=landed.obj.name),
            )
        except SchemaError as exc:
            _delete_quietly(self.store, written.files)
            return NotLanded(landed.obj, exc, landed.attempts)
        failpoints.hit("commit.before")
        replaced = self.catalog.commit_partition(
            self.component_id,
            name=landed.obj.name,
            fingerprint=landed.obj.fingerprint,
            code_version=self.version,
            schema=written.schema,
            files=written.files,
            row_count=written.rows,
            byte_size=written.bytes,
            run_id=self.run_id,
            attempts=landed.attempts,
            read_seconds=landed.seconds,
            now=self.clock(),
            holder=self.holder,
        )
        failpoints.hit("commit.after")
        _delete_quietly(self.store, replaced)
        self.schema = merged
        return landed


def sweep_orphans(
    catalog: Catalog, store: Store, component_id: str, clock: Clock, *, always: bool = False
) -> None:
    """Before a run, under the component's lease: close runs left open by a dead runner, and
    delete the files that runs which did not end cleanly (killed, interrupted, failed) wrote
    and never committed; after clean runs, only temporary files. `always`: sweep every
    uncommitted file whatever came before."""
    unclean = (
        catalog.abandon_runs(component_id, clock())
        or catalog.last_run_status(component_id) in ("failed", "interrupted")
        or always
    )
    store.sweep(
        component_id,
        catalog.committed_files(component_id) if unclean else set(),
        temporary_only=not unclean,
    )


def _delete_quietly(store: Store, files: list[str]) -> None:
    """Delete files no committed partition names any more. Best effort: the commit already
    happened, so a failure here leaves orphans for a later sweep, not a failed run."""
    try:
        store.delete(files)
    except OSError as exc:
        log.warning(
            "could not delete %d replaced file(s), left for the next sweep: %s", len(files), exc
        )


def _baseline_schema(
    catalog: Catalog, stored: dict[str, StoredPartition], kept: set[str]
) -> pa.Schema:
    """The schema new partitions must agree with: that of the partitions this refresh keeps.
    (Partitions being replaced or dropped do not count: changed code may change types.)"""
    ids = list(dict.fromkeys(p.schema_id for n, p in stored.items() if n in kept))
    found = catalog.schemas(ids)
    return read_schema(found[i] for i in ids)


def _check_parser(
    connector: PartitionedConnector, settings: ComponentSettings, where: Where
) -> None:
    if connector.read_function != "read_bytes":
        return
    if connector.parser_function is None and settings.parser is None:
        raise ConnectorLoadError(
            "read_bytes yields raw bytes, and no parser is chosen to turn them into rows",
            where.at(function="read_bytes"),
            hint="set the parser setting to csv, jsonl or parquet (headwater run --parser csv), "
            "or define parser_function(reader, on_next) in the connector",
        )
    if connector.parser_function is not None and settings.parser is not None:
        raise ConnectorLoadError(
            f"the connector defines parser_function and the parser setting is "
            f"{settings.parser!r}; only one can parse the bytes",
            where.at(function="parser_function"),
            hint="remove the parser setting, or remove parser_function",
        )


def _describe(failure: Failure) -> str:
    place = ", ".join(
        p
        for p in (
            f"partition '{failure.partition}'" if failure.partition else "",
            f"{failure.function}()" if failure.function else "",
        )
        if p
    )
    return f"{place}: {failure.message}" if place else failure.message


def _status(result: RunResult) -> str:
    if result.failed == 0:
        return "succeeded"
    return "partial" if result.landed else "failed"


def _message(error: HeadwaterError) -> str:
    return error.explained if isinstance(error, ConnectorError) else str(error)


def _failure(outcome: NotLanded) -> Failure:
    error = outcome.error
    if isinstance(error, ConnectorError):
        function, detail = error.where.function, error.detail
    else:
        function, detail = None, None
    return Failure(outcome.obj.name, function, _message(error), detail, outcome.attempts)


def _finish(catalog: Catalog, result: RunResult, status: str, started: float, clock: Clock) -> None:
    result.status = status
    result.seconds = time.perf_counter() - started
    counts = {
        **result.counts,
        "landed": result.landed,
        "failed": result.failed,
        "rows": result.rows,
        "bytes": result.bytes,
    }
    catalog.finish_run(
        result.run_id,
        status=status,
        counts=counts,
        failures=result.failures,
        error=result.error,
        now=clock(),
    )


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)

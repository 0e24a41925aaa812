"""A write connector: a component that writes another component's rows out, to files, a
PostgreSQL table or a custom Python `write()`, sending only what changed since its last write.

Each run diffs the upstream's committed partitions against what the target holds (its write
marks in the catalog; for PostgreSQL, the bookkeeping table in the target database), writes
the added and changed partitions, then removes the removed ones. A partition's mark is
recorded right after it is written, so a run that stops half-way leaves the rest to the next.
Files and PostgreSQL stop at the first failing partition (what was written stays written); a
custom `write()` is called once with everything and counts as all or nothing.

When the input or the target (path, format, table, mode, key, database, code) changes, the
marks are forgotten and every partition is written again. A files target first deletes the
files its marks name at its previous path and format (the component's settings keep them),
but those the new target writes over; a previous place it cannot reach is named in a warning
and left as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from headwater import failpoints
from headwater.catalog import ComponentRecord, Failure
from headwater.catalog.lease import Lease
from headwater.catalog.marks import clear_marks, read_marks, record_marks, replace_marks
from headwater.client.models import FilesTarget, PythonWrite
from headwater.component import check_component_name
from headwater.errors import HeadwaterError
from headwater.secrets import scrub
from headwater.workspace import Workspace
from headwater.writes.files import FilesWriter, remove_previous_files
from headwater.writes.plan import UpstreamPartition, WritePlan, plan_write
from headwater.writes.postgres import PostgresWriter
from headwater.writes.python import DataProvider, run_python_write
from headwater.writes.targets import Target, TargetModel, identity, parse_target, target_kind

KIND = "write"


@dataclass(frozen=True)
class WriteSpec:
    """A write connector's declaration.

    Args:
        input: the catalog name of the component whose rows are written.
        target: exactly one of `{"files": {...}}`, `{"postgres": {...}}` or
            `{"python": {...}}` (the fields of FilesTarget, PostgresTarget, PythonWrite).
        connection_settings: the settings of the component's connection (a PostgreSQL
            target takes its `url` from here when the target has none).

    Example:
        >>> spec = WriteSpec("sales", {"files": {"path": "/tmp/out", "format": "csv"}})
    """

    input: str
    target: dict[str, Any]
    connection_settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteRun:
    """One run of a write connector: partitions written, removed and left as they were."""

    run_id: int
    status: str  # succeeded, partial, failed or interrupted
    written: int
    removed: int
    unchanged: int
    rows: int
    error: str | None
    failures: tuple[Failure, ...]


class _Interrupted(Exception):
    """The run's cancel event was set: stop between partitions."""


@dataclass
class _Tally:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    rows: int = 0
    bytes: int = 0

    def counts(self, failed: int) -> dict[str, int]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "landed": self.added + self.changed,
            "failed": failed,
            "rows": self.rows,
            "bytes": self.bytes,
        }


def run_write(
    workspace: Workspace,
    component: str,
    spec: WriteSpec,
    *,
    credential: str | None = None,
    log: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> WriteRun:
    """Write what changed in `spec.input` since this component's last write to its target.

    Args:
        component: the write component's catalog name (created, kind "write", if missing).
        credential: the connection's secret: a PostgreSQL target's password, or the
            `credentials` argument of a custom `write()`. Never shown in logs or errors.
        log: receives human-readable progress lines.
        cancel: when set, the run stops between partitions (status "interrupted").

    Returns:
        The run; its status is "failed" or "partial" (never an exception) when the target or
        the custom code failed, with the reason in `error` and `failures`.

    Raises:
        WriteError: the target declaration is invalid (nothing was recorded).
        SettingsError: a component of another kind already has this name.
        ComponentBusyError: another run of this component holds its lease.
    """
    component = check_component_name(component)

    def say(line: str) -> None:
        if log is not None:
            log(scrub(line, credential))

    target = parse_target(component, spec.target)
    version = identity(spec.input, target, spec.connection_settings)
    catalog, clock = workspace.catalog, workspace.clock
    stored: dict[str, Any] = {"input": spec.input, "target": target_kind(target)}
    if isinstance(target, FilesTarget):  # where its files are, to delete them once it moves
        stored["files"] = {"path": target.path, "format": target.format}
    record = catalog.ensure_component(
        component,
        kind=KIND,
        source_ref=target_kind(target),
        settings=stored,
        code_version=version,
        now=clock(),
    )
    with catalog.lease(record, clock) as lease:
        catalog.abandon_runs(record.id, clock())
        record = catalog.component(component)  # as the last lease holder left it
        if record.code_version != version:
            marks = read_marks(catalog, record.id)
            if marks:
                say("the input or the target changed since the last write: writing every partition")
                if record.source_ref == "files":
                    _remove_previous_files(workspace, record, spec, target, list(marks), say)
                clear_marks(catalog, record.id, holder=lease.holder)
            catalog.update_component(
                record.id,
                source_ref=target_kind(target),
                settings=stored,
                code_version=version,
                now=clock(),
            )
        run_id = catalog.start_run(record.id, executor="thread", holder=lease.holder, now=clock())
        run = _Run(workspace, record, lease, run_id, spec, target, credential, say, cancel)
        failures: list[Failure] = []
        status = "succeeded"
        try:
            run.execute()
        except _Interrupted:
            say("stopping: cancelled")
            status = "interrupted"
        except KeyboardInterrupt:
            _finish(run, "interrupted", [], "interrupted")
            raise
        except HeadwaterError as exc:
            message = scrub(str(exc), credential)
            say(f"failed: {message}")
            detail = getattr(exc, "detail", None)
            failures.append(Failure(run.partition, "write", message, detail))
            status = (
                "partial" if run.tally.added + run.tally.changed + run.tally.removed else "failed"
            )
        except BaseException as exc:
            _finish(run, "failed", [], scrub(f"{type(exc).__name__}: {exc}", credential))
            raise
        error = failures[0].message if failures else None
        _finish(run, status, failures, error if status != "interrupted" else "cancelled")
    tally = run.tally
    return WriteRun(
        run_id=run_id,
        status=status,
        written=tally.added + tally.changed,
        removed=tally.removed,
        unchanged=tally.unchanged,
        rows=tally.rows,
        error=error if status != "interrupted" else "cancelled",
        failures=tuple(failures),
    )


def _remove_previous_files(
    workspace: Workspace,
    record: ComponentRecord,
    spec: WriteSpec,
    target: TargetModel,
    marked: list[str],
    say: Callable[[str], None],
) -> None:
    """Delete the files of the `marked` partitions at the files target `record` last wrote to,
    but those `target` writes over (same place, partition still upstream). The previous place
    is reached with the current target's storage options: they are never stored (they may
    hold secrets)."""
    previous = record.settings.get("files")
    if not isinstance(previous, dict):
        say(
            "warning: where the previous files target wrote was not recorded (by an older "
            f"Headwater): its {len(marked)} file(s) stay there"
        )
        return
    current = target if isinstance(target, FilesTarget) else None
    options = current.storage_options if current is not None else {}
    try:
        upstream = workspace.catalog.component(spec.input)
        rewritten = [p.name for p in workspace.catalog.partitions(upstream.id)]
    except HeadwaterError:
        rewritten = list(marked)  # the run fails on the input: delete nothing it might rewrite
    old = FilesTarget(path=previous["path"], format=previous["format"], storage_options=options)
    remove_previous_files(record.name, old, marked, current, rewritten, say)


def _finish(run: _Run, status: str, failures: list[Failure], error: str | None) -> None:
    run.workspace.catalog.finish_run(
        run.run_id,
        status=status,
        counts=run.tally.counts(len(failures)),
        failures=failures,
        error=error,
        now=run.workspace.clock(),
    )


@dataclass
class _Run:
    """The state of one write run, between the lease and the run's record."""

    workspace: Workspace
    record: ComponentRecord
    lease: Lease
    run_id: int
    spec: WriteSpec
    target: TargetModel
    credential: str | None
    say: Callable[[str], None]
    cancel: threading.Event | None
    tally: _Tally = field(default_factory=_Tally)
    partition: str | None = None  # the partition being written, when one fails

    def execute(self) -> None:
        catalog = self.workspace.catalog
        upstream = catalog.component(self.spec.input)
        partitions = [UpstreamPartition.of(p) for p in catalog.partitions(upstream.id)]
        schema = catalog.component_schema(upstream.id)
        marked = {p: m.fingerprint for p, m in read_marks(catalog, self.record.id).items()}
        if not partitions and not marked:
            self.say(f"nothing to write: '{self.spec.input}' has no partitions yet")
            return
        if isinstance(self.target, PythonWrite):
            self._python(self.target, schema, partitions, marked)
            return
        writer: Target
        if isinstance(self.target, FilesTarget):
            writer = FilesWriter(self.record.name, self.target)
        else:
            by_name = {p.name: p for p in partitions}

            def read(name: str) -> Iterable[pa.RecordBatch] | None:
                partition = by_name.get(name)
                if partition is None:
                    return None
                return self.workspace.store.read_batches(partition.files, schema)

            writer = PostgresWriter(
                self.record.name,
                self.target,
                self.spec.connection_settings,
                self.credential,
                self.say,
                read,
            )
        try:
            self._each(writer, schema, partitions, marked)
        finally:
            writer.close()

    def _check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Interrupted
        self.lease.check()

    def _plan(self, partitions: list[UpstreamPartition], held: dict[str, str]) -> WritePlan:
        plan = plan_write(partitions, held)
        self.tally.unchanged = len(plan.unchanged)
        self.say(plan.describe())
        return plan

    def _each(
        self,
        writer: Target,
        schema: pa.Schema,
        partitions: list[UpstreamPartition],
        marked: dict[str, str],
    ) -> None:
        catalog, store = self.workspace.catalog, self.workspace.store
        self.say(f"writing '{self.spec.input}' to {writer.description}")
        held = writer.open(schema, [p.name for p in partitions], marked)
        gone = sorted(set(marked) - set(held))
        if gone:
            self.say(f"{len(gone)} partition(s) written before are not in the target: rewriting")
        replace_marks(
            catalog,
            self.record.id,
            held,
            run_id=self.run_id,
            now=self.workspace.clock(),
            holder=self.lease.holder,
        )
        plan = self._plan(partitions, held)
        new = {p.name for p in plan.added}
        for partition in plan.to_write:
            self.partition = None
            self._check()
            self.partition = partition.name
            written = writer.write(partition, store.read_batches(partition.files, schema))
            failpoints.hit("write.after_target")  # written, not yet marked
            record_marks(
                catalog,
                self.record.id,
                {partition.name: partition.version},
                run_id=self.run_id,
                now=self.workspace.clock(),
                holder=self.lease.holder,
            )
            if partition.name in new:
                self.tally.added += 1
            else:
                self.tally.changed += 1
            self.tally.rows += written.rows
            self.tally.bytes += written.bytes
            self.say(f"wrote partition '{partition.name}': {written.rows} rows to {written.place}")
        for name in plan.removed:
            self.partition = None
            self._check()
            self.partition = name
            done = writer.remove(name)
            record_marks(
                catalog,
                self.record.id,
                {},
                removed=[name],
                run_id=self.run_id,
                now=self.workspace.clock(),
                holder=self.lease.holder,
            )
            self.tally.removed += 1
            self.say(done)
        self.partition = None

    def _python(
        self,
        target: PythonWrite,
        schema: pa.Schema,
        partitions: list[UpstreamPartition],
        marked: dict[str, str],
    ) -> None:
        plan = self._plan(partitions, marked)
        if not plan.to_write and not plan.removed:
            return
        self._check()
        provider = DataProvider(self.workspace.store, schema, plan.to_write, plan.removed)
        run_python_write(
            self.record.name, target, provider, credential=self.credential, run_id=self.run_id
        )
        record_marks(
            self.workspace.catalog,
            self.record.id,
            {p.name: p.version for p in plan.to_write},
            removed=plan.removed,
            run_id=self.run_id,
            now=self.workspace.clock(),
            holder=self.lease.holder,
        )
        self.tally.added = len(plan.added)
        self.tally.changed = len(plan.changed)
        self.tally.removed = len(plan.removed)
        self.tally.rows = sum(p.rows for p in plan.to_write)
        self.say(
            f"write() wrote {len(plan.to_write)} partition(s), {self.tally.rows} rows; "
            f"{len(plan.removed)} removed"
        )

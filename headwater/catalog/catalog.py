"""The catalog: the truth about components, partitions and runs.

A partition exists when its row is committed here, and not before: files are written first,
then `commit_partition` records them in one transaction.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from headwater import failpoints
from headwater import schema as schemas
from headwater.catalog import connect
from headwater.catalog.lease import Clock, Lease
from headwater.catalog.tables import (
    components,
    leases,
    partition_lineage,
    partitions,
    run_failures,
    runs,
    stream_checkpoints,
    task_attempts,
)
from headwater.catalog.tables import schemas as schema_table
from headwater.errors import CatalogError, ComponentBusyError, NotFoundError, SettingsError

RUN_STATUSES = ("running", "succeeded", "partial", "failed", "interrupted", "abandoned")
# A task attempt is open while its job may be running: "creating" (the write-ahead record,
# written before the connector's create; no resource_meta yet) and "running" (resource_meta
# recorded). Every other state is closed.
TASK_OPEN_STATES = ("creating", "running")
TASK_CLOSED_STATES = ("landed", "succeeded", "failed", "cancelled", "not_started", "reset")


@dataclass(frozen=True)
class StoredPartition:
    """What the catalog knows of a committed partition, as far as planning needs."""

    name: str
    fingerprint: str
    code_version: str
    schema_id: str


@dataclass(frozen=True)
class Checkpoint:
    """A stream's last landed commit and the offset reported with it.

    `task_attempt`, for a task component, is the attempt whose outputs the commit lands: it is
    closed ("landed") in the same transaction, so its job is landed exactly once.
    """

    seq: int
    time: int
    offset: Any
    task_attempt: int | None = None


@dataclass(frozen=True)
class Lineage:
    """One input partition, at the fingerprint it had, that a partition was computed from."""

    input_component_id: str
    input_partition: str
    input_fingerprint: str


@dataclass(frozen=True)
class TaskAttempt:
    """One job a task component started (or was about to start): its write-ahead record."""

    id: int
    component_id: str
    run_id: int
    attempt: int
    idempotency_key: str
    task_type: str
    task_type_version: int
    state: str
    resource_meta: bytes | None
    message: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @property
    def is_open(self) -> bool:
        return self.state in TASK_OPEN_STATES


@dataclass(frozen=True)
class ComponentRecord:
    id: str
    name: str
    kind: str
    source_ref: str
    settings: dict[str, Any]
    code_version: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class PartitionRecord:
    name: str
    fingerprint: str
    code_version: str
    schema_id: str
    files: list[str]
    row_count: int
    byte_size: int
    run_id: int
    attempts: int
    read_seconds: float
    committed_at: datetime.datetime


@dataclass(frozen=True)
class RunRecord:
    id: int
    component: str
    status: str
    executor: str
    started_at: datetime.datetime
    finished_at: datetime.datetime | None
    added: int
    changed: int
    removed: int
    unchanged: int
    landed: int
    failed: int
    rows: int
    bytes: int
    error: str | None


@dataclass(frozen=True)
class Failure:
    """One partition (or the whole listing) that failed in a run."""

    partition: str | None
    function: str | None
    message: str
    detail: str | None = None
    attempts: int = 1


class Catalog:
    """Queries and commits over the catalog database (SQLite or PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Catalog:
        engine = connect.create_engine(url)
        try:
            connect.upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def _reading(self) -> sa.Connection:
        """A connection for queries only (on SQLite it does not take the write lock)."""
        return self.engine.connect().execution_options(**{connect.READ_ONLY: True})

    def lease(self, component: ComponentRecord, clock: Clock) -> Lease:
        return Lease(self.engine, component.id, component.name, clock)

    # -- components ---------------------------------------------------------------------------

    def ensure_component(
        self,
        name: str,
        *,
        kind: str,
        source_ref: str,
        settings: dict[str, Any],
        code_version: str,
        now: datetime.datetime,
    ) -> ComponentRecord:
        """The component called `name`, created with these values if it does not exist yet.
        An existing one is returned as stored: changing it is for the lease holder."""
        with self.engine.begin() as c:
            row = c.execute(sa.select(components).where(components.c.name == name)).first()
            if row is None:
                # Two first runs of a new component may race to create it: one insert wins.
                c.execute(
                    _insert_ignoring_duplicates(c, components).values(
                        id=uuid.uuid4().hex,
                        name=name,
                        kind=kind,
                        source_ref=source_ref,
                        settings=settings,
                        code_version=code_version,
                        created_at=now,
                        updated_at=now,
                    )
                )
                row = c.execute(sa.select(components).where(components.c.name == name)).one()
        if row.kind != kind:
            raise SettingsError(
                f"component '{name}' exists as a {row.kind} component, not a {kind} one; "
                "choose another name"
            )
        return ComponentRecord(**row._asdict())

    def update_component(
        self,
        component_id: str,
        *,
        source_ref: str,
        settings: dict[str, Any],
        code_version: str,
        now: datetime.datetime,
    ) -> None:
        with self.engine.begin() as c:
            c.execute(
                components.update()
                .where(components.c.id == component_id)
                .values(
                    source_ref=source_ref,
                    settings=settings,
                    code_version=code_version,
                    updated_at=now,
                )
            )

    def component(self, name: str) -> ComponentRecord:
        with self._reading() as c:
            row = c.execute(sa.select(components).where(components.c.name == name)).first()
            if row is None:
                known = c.execute(sa.select(components.c.name).order_by("name")).scalars().all()
                listing = ", ".join(known) if known else "none yet: run `headwater run FILE`"
                raise NotFoundError(f"no component named '{name}' (components: {listing})")
        return ComponentRecord(**row._asdict())

    def components(self) -> list[ComponentRecord]:
        with self._reading() as c:
            rows = c.execute(sa.select(components).order_by(components.c.name))
            return [ComponentRecord(**r._asdict()) for r in rows]

    # -- partitions ---------------------------------------------------------------------------

    def stored_partitions(self, component_id: str) -> dict[str, StoredPartition]:
        """What planning needs of every committed partition, in one query."""
        query = sa.select(
            partitions.c.name,
            partitions.c.fingerprint,
            partitions.c.code_version,
            partitions.c.schema_id,
        ).where(partitions.c.component_id == component_id)
        with self._reading() as c:
            return {r.name: StoredPartition(*r) for r in c.execute(query)}

    def partitions(self, component_id: str) -> list[PartitionRecord]:
        query = (
            sa.select(*(partitions.c[f] for f in PartitionRecord.__dataclass_fields__))
            .where(partitions.c.component_id == component_id)
            .order_by(partitions.c.name)
        )
        with self._reading() as c:
            return [PartitionRecord(**r._asdict()) for r in c.execute(query)]

    def committed_files(self, component_id: str) -> set[str]:
        query = sa.select(partitions.c.files).where(partitions.c.component_id == component_id)
        with self._reading() as c:
            return {f for files in c.execute(query).scalars() for f in files}

    def schemas(self, ids: Iterable[str]) -> dict[str, pa.Schema]:
        wanted = sorted(set(ids))
        found: dict[str, pa.Schema] = {}
        with self._reading() as c:
            for chunk in _chunks(wanted):
                query = sa.select(schema_table).where(schema_table.c.id.in_(chunk))
                found.update({r.id: schemas.deserialize(r.arrow) for r in c.execute(query)})
        return found

    def component_schema(self, component_id: str) -> pa.Schema:
        """The schema readers see: every committed partition's schema, merged leniently (what
        was admitted under any policy must stay readable)."""
        query = (
            sa.select(partitions.c.schema_id)
            .where(partitions.c.component_id == component_id)
            .group_by(partitions.c.schema_id)
            .order_by(sa.func.min(partitions.c.id))
        )
        with self._reading() as c:
            ids = list(c.execute(query).scalars())
        return read_schema(self.schemas(ids).get(i, schemas.EMPTY) for i in ids)

    def commit_partition(
        self,
        component_id: str,
        *,
        name: str,
        fingerprint: str,
        code_version: str,
        schema: pa.Schema,
        files: list[str],
        row_count: int,
        byte_size: int,
        run_id: int,
        attempts: int,
        read_seconds: float,
        now: datetime.datetime,
        checkpoint: Checkpoint | None = None,
        holder: str | None = None,
        lineage: Sequence[Lineage] | None = None,
    ) -> list[str]:
        """Make a partition visible (replacing any earlier version). Returns the files of the
        version it replaced, which the caller deletes once this has committed. A stream's
        `checkpoint` and a transform's `lineage` (replacing the partition's earlier lineage)
        are stored in the same transaction. Given the lease `holder`, the commit happens only
        while that runner still holds the component's lease."""
        schema_id = schemas.schema_id(schema)
        values = {
            "fingerprint": fingerprint,
            "code_version": code_version,
            "schema_id": schema_id,
            "files": files,
            "row_count": row_count,
            "byte_size": byte_size,
            "run_id": run_id,
            "attempts": attempts,
            "read_seconds": read_seconds,
            "committed_at": now,
        }
        key = (partitions.c.component_id == component_id) & (partitions.c.name == name)
        with self.engine.begin() as c:
            _fence(c, component_id, holder)
            # Runners of other components may store the same new schema at the same moment.
            c.execute(
                _insert_ignoring_duplicates(c, schema_table).values(
                    id=schema_id, arrow=schemas.serialize(schema)
                )
            )
            old = c.execute(sa.select(partitions.c.files).where(key)).first()
            if old is None:
                c.execute(
                    partitions.insert().values(component_id=component_id, name=name, **values)
                )
            else:
                c.execute(partitions.update().where(key).values(**values))
            if checkpoint is not None:
                self._store_checkpoint(c, component_id, checkpoint, now)
                if checkpoint.task_attempt is not None:
                    _close_task_attempt(
                        c, checkpoint.task_attempt, "landed", None, now, *TASK_OPEN_STATES
                    )
            if lineage is not None:
                _delete_lineage(c, component_id, [name])
                if lineage:
                    c.execute(
                        partition_lineage.insert(),
                        [
                            {"component_id": component_id, "partition": name, **vars(e)}
                            for e in lineage
                        ],
                    )
            failpoints.hit("catalog.in_commit")
        return list(old.files) if old is not None else []

    def _store_checkpoint(
        self,
        c: sa.Connection,
        component_id: str,
        checkpoint: Checkpoint,
        now: datetime.datetime,
    ) -> None:
        values = {
            "seq": checkpoint.seq,
            "time": checkpoint.time,
            "offset": checkpoint.offset,
            "updated_at": now,
        }
        key = stream_checkpoints.c.component_id == component_id
        if c.execute(stream_checkpoints.update().where(key).values(**values)).rowcount == 0:
            c.execute(stream_checkpoints.insert().values(component_id=component_id, **values))

    def checkpoint(self, component_id: str) -> Checkpoint | None:
        query = sa.select(
            stream_checkpoints.c.seq, stream_checkpoints.c.time, stream_checkpoints.c.offset
        ).where(stream_checkpoints.c.component_id == component_id)
        with self._reading() as c:
            row = c.execute(query).first()
        return Checkpoint(int(row.seq), int(row.time), row.offset) if row else None

    def reset_checkpoint(self, component_id: str, now: datetime.datetime) -> Checkpoint | None:
        """Clear the offset of a component's checkpoint (its seq goes on, so partition names
        stay unique). Returns the checkpoint as it was."""
        before = self.checkpoint(component_id)
        if before is not None:
            key = stream_checkpoints.c.component_id == component_id
            with self.engine.begin() as c:
                c.execute(
                    stream_checkpoints.update().where(key).values(offset=None, updated_at=now)
                )
        return before

    def drop_partitions(
        self, component_id: str, names: Sequence[str], holder: str | None = None
    ) -> list[str]:
        """Remove partitions in one transaction. Returns their files, for the caller to delete."""
        dropped: list[str] = []
        with self.engine.begin() as c:
            _fence(c, component_id, holder)
            for chunk in _chunks(list(names)):
                key = (partitions.c.component_id == component_id) & partitions.c.name.in_(chunk)
                dropped += [
                    f
                    for files in c.execute(sa.select(partitions.c.files).where(key)).scalars()
                    for f in files
                ]
                c.execute(partitions.delete().where(key))
                _delete_lineage(c, component_id, chunk)
        return dropped

    def lineage(self, component_id: str) -> dict[str, list[Lineage]]:
        """Each partition's input partitions (only transforms record any), by partition name."""
        query = (
            sa.select(partition_lineage)
            .where(partition_lineage.c.component_id == component_id)
            .order_by(
                partition_lineage.c.partition,
                partition_lineage.c.input_component_id,
                partition_lineage.c.input_partition,
            )
        )
        found: dict[str, list[Lineage]] = {}
        with self._reading() as c:
            for row in c.execute(query):
                found.setdefault(row.partition, []).append(
                    Lineage(row.input_component_id, row.input_partition, row.input_fingerprint)
                )
        return found

    # -- task attempts ------------------------------------------------------------------------

    def start_task_attempt(
        self,
        component_id: str,
        *,
        run_id: int,
        attempt: int,
        idempotency_key: str,
        task_type: str,
        task_type_version: int,
        holder: str | None,
        now: datetime.datetime,
    ) -> TaskAttempt:
        """Write the write-ahead record of a job about to be created (state "creating").
        Committed before the connector is called; only while `holder` holds the lease."""
        with self.engine.begin() as c:
            _fence(c, component_id, holder)
            result = c.execute(
                task_attempts.insert().values(
                    component_id=component_id,
                    run_id=run_id,
                    attempt=attempt,
                    idempotency_key=idempotency_key,
                    task_type=task_type,
                    task_type_version=task_type_version,
                    state="creating",
                    created_at=now,
                    updated_at=now,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            row = c.execute(sa.select(task_attempts).where(task_attempts.c.id == key[0])).one()
        return TaskAttempt(**row._asdict())

    def record_task_meta(
        self, attempt_id: int, resource_meta: bytes, *, holder: str | None, now: datetime.datetime
    ) -> None:
        """Store the job's encoded ResourceMeta on its record ("creating" -> "running")."""
        with self.engine.begin() as c:
            _fence(c, _attempt_component(c, attempt_id), holder)
            result = c.execute(
                task_attempts.update()
                .where(task_attempts.c.id == attempt_id)
                .where(task_attempts.c.state == "creating")
                .values(state="running", resource_meta=resource_meta, updated_at=now)
            )
            if result.rowcount != 1:
                raise CatalogError(
                    f"task attempt {attempt_id} is no longer waiting for its resource_meta "
                    "(another runner resolved or reset it)"
                )

    def close_task_attempt(
        self,
        attempt_id: int,
        state: str,
        message: str | None,
        *,
        holder: str | None,
        now: datetime.datetime,
    ) -> None:
        """Close an open attempt: its job finished, failed, was cancelled, never started, or
        an operator reset it. Closing a closed attempt is an error."""
        assert state in TASK_CLOSED_STATES, state
        with self.engine.begin() as c:
            _fence(c, _attempt_component(c, attempt_id), holder)
            _close_task_attempt(c, attempt_id, state, message, now, *TASK_OPEN_STATES)

    def task_attempts(self, component_id: str, *, open_only: bool = False) -> list[TaskAttempt]:
        """A component's task attempts, oldest first."""
        query = (
            sa.select(task_attempts)
            .where(task_attempts.c.component_id == component_id)
            .order_by(task_attempts.c.id)
        )
        if open_only:
            query = query.where(task_attempts.c.state.in_(TASK_OPEN_STATES))
        with self._reading() as c:
            return [TaskAttempt(**r._asdict()) for r in c.execute(query)]

    # -- runs ---------------------------------------------------------------------------------

    def start_run(
        self, component_id: str, *, executor: str, holder: str, now: datetime.datetime
    ) -> int:
        zero = dict.fromkeys(
            ("added", "changed", "removed", "unchanged", "landed", "failed", "rows", "bytes"), 0
        )
        with self.engine.begin() as c:
            result = c.execute(
                runs.insert().values(
                    component_id=component_id,
                    status="running",
                    executor=executor,
                    holder=holder,
                    started_at=now,
                    **zero,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        counts: dict[str, int],
        failures: Sequence[Failure],
        error: str | None,
        now: datetime.datetime,
    ) -> None:
        assert status in RUN_STATUSES, status
        with self.engine.begin() as c:
            c.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(status=status, finished_at=now, error=error, **counts)
            )
            if failures:
                c.execute(
                    run_failures.insert(),
                    [{"run_id": run_id, **f.__dict__} for f in failures],
                )

    def abandon_runs(self, component_id: str, now: datetime.datetime) -> int:
        """Close runs left 'running' by a runner that died. Call with the lease held. What
        such a run committed before it died is counted from its partitions (its own counts
        are written only when a run finishes)."""
        mine = partitions.c.run_id == runs.c.id
        with self.engine.begin() as c:
            result = c.execute(
                runs.update()
                .where(runs.c.component_id == component_id)
                .where(runs.c.status == "running")
                .values(
                    status="abandoned",
                    finished_at=now,
                    error="the runner stopped before finishing (killed or crashed); "
                    "the next refresh completed the work",
                    landed=sa.select(sa.func.count()).where(mine).scalar_subquery(),
                    rows=sa.select(sa.func.coalesce(sa.func.sum(partitions.c.row_count), 0))
                    .where(mine)
                    .scalar_subquery(),
                    bytes=sa.select(sa.func.coalesce(sa.func.sum(partitions.c.byte_size), 0))
                    .where(mine)
                    .scalar_subquery(),
                )
            )
            return int(result.rowcount)

    def last_run_status(self, component_id: str) -> str | None:
        query = (
            sa.select(runs.c.status)
            .where(runs.c.component_id == component_id)
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        with self._reading() as c:
            return c.execute(query).scalar()

    def runs(self, component_id: str | None = None, limit: int = 20) -> list[RunRecord]:
        query = (
            sa.select(runs, components.c.name.label("component"))
            .join(components, components.c.id == runs.c.component_id)
            .order_by(runs.c.id.desc())
            .limit(limit)
        )
        if component_id is not None:
            query = query.where(runs.c.component_id == component_id)
        with self._reading() as c:
            return [_run_record(r) for r in c.execute(query)]

    def run(self, run_id: int) -> RunRecord:
        query = (
            sa.select(runs, components.c.name.label("component"))
            .join(components, components.c.id == runs.c.component_id)
            .where(runs.c.id == run_id)
        )
        with self._reading() as c:
            row = c.execute(query).first()
        if row is None:
            raise NotFoundError(f"no run with id {run_id}; `headwater runs` lists them")
        return _run_record(row)

    def run_failures(self, run_id: int) -> list[Failure]:
        query = (
            sa.select(
                run_failures.c.partition,
                run_failures.c.function,
                run_failures.c.message,
                run_failures.c.detail,
                run_failures.c.attempts,
            )
            .where(run_failures.c.run_id == run_id)
            .order_by(run_failures.c.id)
        )
        with self._reading() as c:
            return [Failure(*r) for r in c.execute(query)]


def read_schema(parts: Iterable[pa.Schema]) -> pa.Schema:
    """Partition schemas merged the way readers see them (leniently: never a conflict)."""
    merged = schemas.EMPTY
    for schema in parts:
        merged = schemas.merge(merged, schema, widen=True, lenient=True)
    return merged


def _fence(c: sa.Connection, component_id: str, holder: str | None) -> None:
    """Within a writing transaction: go on only while `holder` holds the component's lease.
    A runner that stalled past its lease's expiry must not commit after another took over."""
    if holder is None:
        return
    current = c.execute(
        sa.select(leases.c.holder).where(leases.c.component_id == component_id).with_for_update()
    ).scalar()
    if current != holder:
        raise ComponentBusyError(
            f"this runner ({holder}) lost the component's lease to {current or 'nobody'} "
            "(it stalled past the lease's expiry); it stops without committing more"
        )


def _attempt_component(c: sa.Connection, attempt_id: int) -> str:
    component_id = c.execute(
        sa.select(task_attempts.c.component_id).where(task_attempts.c.id == attempt_id)
    ).scalar()
    if component_id is None:
        raise NotFoundError(f"no task attempt with id {attempt_id}")
    return str(component_id)


def _close_task_attempt(
    c: sa.Connection,
    attempt_id: int,
    state: str,
    message: str | None,
    now: datetime.datetime,
    *from_states: str,
) -> None:
    result = c.execute(
        task_attempts.update()
        .where(task_attempts.c.id == attempt_id)
        .where(task_attempts.c.state.in_(from_states))
        .values(state=state, message=message, updated_at=now)
    )
    if result.rowcount != 1:
        raise CatalogError(
            f"task attempt {attempt_id} cannot become {state!r}: it is not "
            f"{' or '.join(from_states)} (another runner closed or reset it)"
        )


def _insert_ignoring_duplicates(c: sa.Connection, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the catalog's dialect."""
    from sqlalchemy.dialects import postgresql, sqlite

    if c.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _run_record(row: Any) -> RunRecord:
    data = row._asdict()
    return RunRecord(**{f: data[f] for f in RunRecord.__dataclass_fields__})


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    """Slices small enough for an IN (...) clause on every database."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _delete_lineage(c: sa.Connection, component_id: str, names: Sequence[str]) -> None:
    c.execute(
        partition_lineage.delete()
        .where(partition_lineage.c.component_id == component_id)
        .where(partition_lineage.c.partition.in_(names))
    )

"""Write marks: what a write connector has written of its upstream, partition by partition.

A mark is `(partition, fingerprint)`: the upstream partition, at the version it had when it was
written (see `headwater.writes.plan.partition_version`). The next write sends only the
partitions whose version differs from their mark, and removes those whose mark has no upstream
partition any more. A mark is recorded right after its partition is written, so a run that
stops half-way leaves marks for exactly what it wrote.

Every writing function takes the lease `holder`: a runner that lost its component's lease
(it stalled past the expiry) records nothing more.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from headwater.catalog.catalog import Catalog, _chunks, _fence
from headwater.catalog.tables import write_marks


@dataclass(frozen=True)
class WriteMark:
    """One upstream partition as a write connector last wrote it."""

    partition: str
    fingerprint: str
    run_id: int
    written_at: datetime.datetime


def read_marks(catalog: Catalog, component_id: str) -> dict[str, WriteMark]:
    """Every mark of a write component, by partition name."""
    query = sa.select(
        write_marks.c.partition,
        write_marks.c.fingerprint,
        write_marks.c.run_id,
        write_marks.c.written_at,
    ).where(write_marks.c.component_id == component_id)
    with catalog._reading() as c:
        return {r.partition: WriteMark(*r) for r in c.execute(query)}


def record_marks(
    catalog: Catalog,
    component_id: str,
    written: Mapping[str, str],
    *,
    removed: Iterable[str] = (),
    run_id: int,
    now: datetime.datetime,
    holder: str | None = None,
) -> None:
    """Record what a write did, in one transaction: the partitions `written` (partition ->
    fingerprint, replacing their earlier marks) and those `removed` (their marks forgotten)."""
    removed = list(removed)
    if not written and not removed:
        return
    with catalog.engine.begin() as c:
        _fence(c, component_id, holder)
        _upsert(c, component_id, written, run_id, now)
        if removed:
            _delete(c, component_id, removed)


def clear_marks(
    catalog: Catalog,
    component_id: str,
    partitions: Iterable[str] | None = None,
    *,
    holder: str | None = None,
) -> None:
    """Forget the marks of `partitions` (every mark of the component when None): those
    partitions count as never written."""
    with catalog.engine.begin() as c:
        _fence(c, component_id, holder)
        _delete(c, component_id, None if partitions is None else list(partitions))


def replace_marks(
    catalog: Catalog,
    component_id: str,
    marks: Mapping[str, str],
    *,
    run_id: int,
    now: datetime.datetime,
    holder: str | None = None,
) -> None:
    """Make the component's marks exactly `marks`, in one transaction. For a target that
    keeps its own record of what it holds (the catalog's marks are then a copy of it)."""
    before = read_marks(catalog, component_id)
    stale = [p for p in before if p not in marks]
    changed = {p: f for p, f in marks.items() if p not in before or before[p].fingerprint != f}
    if not stale and not changed:
        return
    with catalog.engine.begin() as c:
        _fence(c, component_id, holder)
        if stale:
            _delete(c, component_id, stale)
        _upsert(c, component_id, changed, run_id, now)


def _upsert(
    c: sa.Connection,
    component_id: str,
    marks: Mapping[str, str],
    run_id: int,
    now: datetime.datetime,
) -> None:
    if not marks:
        return
    insert: Any
    if c.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(write_marks)
    statement = statement.on_conflict_do_update(
        index_elements=[write_marks.c.component_id, write_marks.c.partition],
        set_={
            "fingerprint": statement.excluded.fingerprint,
            "run_id": statement.excluded.run_id,
            "written_at": statement.excluded.written_at,
        },
    )
    c.execute(
        statement,
        [
            {
                "component_id": component_id,
                "partition": partition,
                "fingerprint": fingerprint,
                "run_id": run_id,
                "written_at": now,
            }
            for partition, fingerprint in marks.items()
        ],
    )


def _delete(c: sa.Connection, component_id: str, partitions: list[str] | None) -> None:
    mine = write_marks.c.component_id == component_id
    if partitions is None:
        c.execute(write_marks.delete().where(mine))
        return
    for chunk in _chunks(partitions):
        c.execute(write_marks.delete().where(mine).where(write_marks.c.partition.in_(chunk)))

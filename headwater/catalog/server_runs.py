"""Runs requested through the server, and their logs, in the catalog.

A server run is recorded when it is asked for ("queued"), before the engine's own run exists,
so the API can answer with its id at once. The engine's run (`runs`) is linked once known. A
partial unique index allows one queued or running server run per component, on every server
process sharing the catalog.
"""

from __future__ import annotations

import builtins
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from headwater.catalog import Catalog, connect
from headwater.catalog.tables import component_definitions, runs, server_run_logs, server_runs
from headwater.errors import ComponentBusyError, NotFoundError

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "partial", "failed", "cancelled", "interrupted", "abandoned")


class RunConflictError(ComponentBusyError):
    """A run of the component is already queued or running (answer 409, naming it)."""

    def __init__(self, message: str, run_id: int) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass(frozen=True)
class ServerRunRecord:
    id: int
    component_id: str
    data_service: str
    dataflow: str
    component: str
    status: str
    run_id: int | None  # the engine's run
    holder: str  # the server process that runs it
    requested_by: str | None
    cancel_requested: bool
    requested_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    error: str | None
    triggered_by: int | None = None  # the upstream server run whose success queued this one


@dataclass(frozen=True)
class LogRecord:
    seq: int
    at: datetime.datetime
    level: str
    message: str


def _engine_run() -> sa.ColumnElement[object]:
    """The catalog run a server run executed as. Recorded when the run ends; until then (or if
    the server died first) it is the component's engine run started inside this run's window:
    one writer per component makes that one unique."""
    started_within = (
        sa.select(sa.func.max(runs.c.id))
        .where(runs.c.component_id == server_runs.c.component_id)
        .where(runs.c.started_at >= server_runs.c.started_at)
        .where(
            sa.or_(
                server_runs.c.finished_at.is_(None), runs.c.started_at <= server_runs.c.finished_at
            )
        )
        .scalar_subquery()
    )
    return sa.func.coalesce(server_runs.c.run_id, started_within).label("run_id")


def _query() -> sa.Select[tuple[object, ...]]:
    columns = [c for c in server_runs.c if c.name != "run_id"]
    return sa.select(
        *columns,
        _engine_run(),
        component_definitions.c.data_service,
        component_definitions.c.dataflow,
        component_definitions.c.id.label("component"),
    ).join(
        component_definitions, component_definitions.c.component_id == server_runs.c.component_id
    )


class ServerRuns:
    """Record, follow and close server runs."""

    def __init__(self, catalog: Catalog) -> None:
        self.engine = catalog.engine

    def _reading(self) -> sa.Connection:
        return self.engine.connect().execution_options(**{connect.READ_ONLY: True})

    def create(
        self,
        component_id: str,
        *,
        holder: str,
        requested_by: str | None,
        now: datetime.datetime,
        triggered_by: int | None = None,
    ) -> ServerRunRecord:
        """Queue a run of the component; RunConflictError when one is queued or running."""
        try:
            with self.engine.begin() as c:
                self._refuse_active(c, component_id)
                result = c.execute(
                    server_runs.insert().values(
                        component_id=component_id,
                        status="queued",
                        holder=holder,
                        requested_by=requested_by,
                        cancel_requested=False,
                        requested_at=now,
                        triggered_by=triggered_by,
                    )
                )
                key = result.inserted_primary_key
                assert key is not None
        except sa.exc.IntegrityError:  # another server queued one between check and insert
            with self.engine.begin() as c:
                self._refuse_active(c, component_id)
            raise
        return self.get(int(key[0]))

    def _refuse_active(self, c: sa.Connection, component_id: str) -> None:
        active = c.execute(
            _query()
            .where(server_runs.c.component_id == component_id)
            .where(server_runs.c.status.in_(ACTIVE))
        ).first()
        if active is not None:
            raise RunConflictError(
                f"component '{active.component}' already has run {active.id} {active.status} "
                f"(requested at {active.requested_at:%Y-%m-%d %H:%M:%S} UTC); one component "
                f"has one writer: wait for run {active.id} to end, or cancel it",
                active.id,
            )

    def get(self, id: int) -> ServerRunRecord:
        with self._reading() as c:
            row = c.execute(_query().where(server_runs.c.id == id)).first()
        if row is None:
            raise NotFoundError(f"no run {id}")
        return ServerRunRecord(**row._asdict())

    def list(self, component_id: str, limit: int = 20) -> list[ServerRunRecord]:
        """The component's runs, newest first."""
        query = (
            _query()
            .where(server_runs.c.component_id == component_id)
            .order_by(server_runs.c.id.desc())
            .limit(limit)
        )
        with self._reading() as c:
            return [ServerRunRecord(**r._asdict()) for r in c.execute(query)]

    def triggered(self, id: int) -> builtins.list[ServerRunRecord]:
        """The runs that run `id` queued downstream, oldest first."""
        query = _query().where(server_runs.c.triggered_by == id).order_by(server_runs.c.id)
        with self._reading() as c:
            return [ServerRunRecord(**r._asdict()) for r in c.execute(query)]

    def start(self, id: int, now: datetime.datetime) -> None:
        with self.engine.begin() as c:
            c.execute(
                server_runs.update()
                .where(server_runs.c.id == id)
                .where(server_runs.c.status == "queued")
                .values(status="running", started_at=now)
            )

    def finish(
        self,
        id: int,
        *,
        status: str,
        run_id: int | None,
        error: str | None,
        now: datetime.datetime,
    ) -> None:
        assert status in FINAL, status
        with self.engine.begin() as c:
            c.execute(
                server_runs.update()
                .where(server_runs.c.id == id)
                .where(server_runs.c.status.in_(ACTIVE))
                .values(status=status, run_id=run_id, error=error, finished_at=now)
            )

    def request_cancel(self, id: int) -> ServerRunRecord:
        """Mark the run to be cancelled (the runner honours it); a finished run is unchanged."""
        with self.engine.begin() as c:
            c.execute(
                server_runs.update()
                .where(server_runs.c.id == id)
                .where(server_runs.c.status.in_(ACTIVE))
                .values(cancel_requested=True)
            )
        return self.get(id)

    def cancel_requested(self, id: int) -> bool:
        with self._reading() as c:
            value = c.execute(
                sa.select(server_runs.c.cancel_requested).where(server_runs.c.id == id)
            ).scalar()
        return bool(value)

    def abandon(self, is_dead: Callable[[str], bool], now: datetime.datetime) -> builtins.list[int]:
        """Close queued or running runs whose server process is gone. Returns their ids."""
        with self.engine.begin() as c:
            rows = c.execute(
                sa.select(server_runs.c.id, server_runs.c.holder).where(
                    server_runs.c.status.in_(ACTIVE)
                )
            ).all()
            dead = [r.id for r in rows if is_dead(r.holder)]
            if dead:
                c.execute(
                    server_runs.update()
                    .where(server_runs.c.id.in_(dead))
                    .values(
                        status="abandoned",
                        finished_at=now,
                        error="the server running it stopped before it finished (killed or "
                        "crashed); trigger the component again to complete the work",
                    )
                )
        return dead

    # -- logs -------------------------------------------------------------------------------

    def append_logs(self, id: int, lines: Sequence[LogRecord]) -> None:
        if not lines:
            return
        with self.engine.begin() as c:
            c.execute(
                server_run_logs.insert(),
                [
                    {"server_run_id": id, "seq": line.seq, "at": line.at, "level": line.level,
                     "message": line.message}
                    for line in lines
                ],
            )  # fmt: skip

    def logs(self, id: int, after: int = 0) -> builtins.list[LogRecord]:
        query = (
            sa.select(
                server_run_logs.c.seq,
                server_run_logs.c.at,
                server_run_logs.c.level,
                server_run_logs.c.message,
            )
            .where(server_run_logs.c.server_run_id == id)
            .where(server_run_logs.c.seq > after)
            .order_by(server_run_logs.c.seq)
        )
        with self._reading() as c:
            return [LogRecord(*r) for r in c.execute(query)]

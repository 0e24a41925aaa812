"""The server's resource model in the catalog: data services, dataflows and connections
(component definitions are in `headwater.catalog.definitions`).

Identity. A data service, a dataflow and a component each have an id (a plain identifier
without double underscores). A component definition owns one row of the catalog's
`components` table, named `<data service>__<dataflow>__<component>`: that row holds its
partitions, runs, lease and checkpoints, and the engine (`headwater runs`, `headwater query`)
knows the component by that name. The name is unambiguous because ids cannot contain `__` or
start or end with `_`. Deleting a definition deletes that row, and with it everything stored.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from headwater.catalog import Catalog, connect
from headwater.catalog.lease import holder_is_dead
from headwater.catalog.tables import (
    component_definitions,
    components,
    connections,
    data_services,
    dataflows,
    leases,
    server_runs,
)
from headwater.errors import HeadwaterError, NotFoundError

MAX_CATALOG_NAME = 63
SEPARATOR = "__"


class ConflictError(HeadwaterError):
    """The request conflicts with what exists: a duplicate id, or a resource still in use."""


class InvalidReferenceError(HeadwaterError, ValueError):
    """A definition refers to something that does not exist or cannot be used (answer 422)."""


def catalog_name(data_service: str, dataflow: str, component: str) -> str:
    """The catalog component name of a server component (see the module docstring)."""
    return SEPARATOR.join((data_service, dataflow, component))


@dataclass(frozen=True)
class DataServiceRecord:
    id: str
    name: str
    description: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class DataflowRecord:
    data_service: str
    id: str
    name: str
    description: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class ConnectionRecord:
    data_service: str
    id: str
    name: str
    description: str | None
    settings: dict[str, Any]
    credential: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class Resources:
    """Create, read, replace and delete the server's resources, in the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.engine = catalog.engine

    def _reading(self) -> sa.Connection:
        return self.engine.connect().execution_options(**{connect.READ_ONLY: True})

    # -- data services ----------------------------------------------------------------------

    def create_data_service(
        self, id: str, *, name: str, description: str | None, now: datetime.datetime
    ) -> DataServiceRecord:
        with self.engine.begin() as c:
            if exists(c, data_services, data_services.c.id == id):
                raise ConflictError(f"data service '{id}' already exists")
            values = {"name": name, "description": description, "created_at": now}
            c.execute(data_services.insert().values(id=id, updated_at=now, **values))
        return self.data_service(id)

    def data_service(self, id: str) -> DataServiceRecord:
        with self._reading() as c:
            return _data_service(c, id)

    def data_services(self) -> list[DataServiceRecord]:
        with self._reading() as c:
            rows = c.execute(sa.select(data_services).order_by(data_services.c.id))
            return [DataServiceRecord(**r._asdict()) for r in rows]

    def replace_data_service(
        self, id: str, *, name: str, description: str | None, now: datetime.datetime
    ) -> DataServiceRecord:
        with self.engine.begin() as c:
            _data_service(c, id)
            c.execute(
                data_services.update()
                .where(data_services.c.id == id)
                .values(name=name, description=description, updated_at=now)
            )
        return self.data_service(id)

    def delete_data_service(self, id: str, now: datetime.datetime) -> list[str]:
        """Delete a data service with its dataflows, components and connections. Returns the
        catalog component ids deleted (their files are the caller's to delete)."""
        with self.engine.begin() as c:
            _data_service(c, id)
            removed = delete_components(c, component_definitions.c.data_service == id, now)
            c.execute(data_services.delete().where(data_services.c.id == id))
        return removed

    # -- dataflows --------------------------------------------------------------------------

    def create_dataflow(
        self,
        data_service: str,
        id: str,
        *,
        name: str,
        description: str | None,
        now: datetime.datetime,
    ) -> DataflowRecord:
        with self.engine.begin() as c:
            _insert_under(
                c, dataflows, "dataflow", data_service, id, now, name=name, description=description
            )
        return self.dataflow(data_service, id)

    def dataflow(self, data_service: str, id: str) -> DataflowRecord:
        with self._reading() as c:
            return get_dataflow(c, data_service, id)

    def dataflows(self, data_service: str) -> list[DataflowRecord]:
        with self._reading() as c:
            return [DataflowRecord(**r) for r in _rows_under(c, dataflows, data_service)]

    def replace_dataflow(
        self,
        data_service: str,
        id: str,
        *,
        name: str,
        description: str | None,
        now: datetime.datetime,
    ) -> DataflowRecord:
        with self.engine.begin() as c:
            get_dataflow(c, data_service, id)
            c.execute(
                dataflows.update()
                .where(_dataflow_key(data_service, id))
                .values(name=name, description=description, updated_at=now)
            )
        return self.dataflow(data_service, id)

    def delete_dataflow(self, data_service: str, id: str, now: datetime.datetime) -> list[str]:
        """Delete a dataflow and its components; returns the catalog component ids deleted."""
        with self.engine.begin() as c:
            get_dataflow(c, data_service, id)
            where = (component_definitions.c.data_service == data_service) & (
                component_definitions.c.dataflow == id
            )
            removed = delete_components(c, where, now)
            c.execute(dataflows.delete().where(_dataflow_key(data_service, id)))
        return removed

    # -- connections ------------------------------------------------------------------------

    def create_connection(
        self,
        data_service: str,
        id: str,
        *,
        name: str,
        description: str | None,
        settings: dict[str, Any],
        credential: str | None,
        now: datetime.datetime,
    ) -> ConnectionRecord:
        with self.engine.begin() as c:
            _insert_under(
                c,
                connections,
                "connection",
                data_service,
                id,
                now,
                name=name,
                description=description,
                settings=settings,
                credential=credential,
            )
        return self.connection(data_service, id)

    def connection(self, data_service: str, id: str) -> ConnectionRecord:
        with self._reading() as c:
            return _connection(c, data_service, id)

    def connections(self, data_service: str) -> list[ConnectionRecord]:
        with self._reading() as c:
            return [ConnectionRecord(**r) for r in _rows_under(c, connections, data_service)]

    def replace_connection(
        self,
        data_service: str,
        id: str,
        *,
        name: str,
        description: str | None,
        settings: dict[str, Any],
        credential: str | None,
        now: datetime.datetime,
    ) -> ConnectionRecord:
        with self.engine.begin() as c:
            _connection(c, data_service, id)
            c.execute(
                connections.update()
                .where(connection_key(data_service, id))
                .values(
                    name=name,
                    description=description,
                    settings=settings,
                    credential=credential,
                    updated_at=now,
                )
            )
        return self.connection(data_service, id)

    def delete_connection(self, data_service: str, id: str) -> None:
        with self.engine.begin() as c:
            _connection(c, data_service, id)
            users = component_ids(
                c,
                (component_definitions.c.data_service == data_service)
                & (component_definitions.c.connection == id),
            )
            if users:
                raise ConflictError(
                    f"connection '{id}' is used by component(s) {', '.join(users)}; change or "
                    "delete them first"
                )
            c.execute(connections.delete().where(connection_key(data_service, id)))

    def credential_users(self, data_service: str, credential: str) -> list[str]:
        """The connections of `data_service` that use `credential`."""
        with self._reading() as c:
            query = sa.select(connections.c.id).where(
                (connections.c.data_service == data_service)
                & (connections.c.credential == credential)
            )
            return list(c.execute(query.order_by(connections.c.id)).scalars())


# -- helpers ------------------------------------------------------------------------------------


def _insert_under(
    c: sa.Connection,
    table: sa.Table,
    what: str,
    data_service: str,
    id: str,
    now: datetime.datetime,
    **values: Any,
) -> None:
    """Create a resource that lives in a data service (a dataflow, a connection)."""
    _data_service(c, data_service)
    key = (table.c.data_service == data_service) & (table.c.id == id)
    if exists(c, table, key):
        raise ConflictError(f"{what} '{id}' already exists in data service '{data_service}'")
    c.execute(
        table.insert().values(
            data_service=data_service, id=id, created_at=now, updated_at=now, **values
        )
    )


def _rows_under(c: sa.Connection, table: sa.Table, data_service: str) -> list[dict[str, Any]]:
    """The resources of one kind in a data service, by id."""
    _data_service(c, data_service)
    query = sa.select(table).where(table.c.data_service == data_service).order_by(table.c.id)
    return [r._asdict() for r in c.execute(query)]


def exists(c: sa.Connection, table: sa.Table, where: Any) -> bool:
    return c.execute(sa.select(sa.literal(1)).select_from(table).where(where)).first() is not None


def _dataflow_key(data_service: str, id: str) -> Any:
    return (dataflows.c.data_service == data_service) & (dataflows.c.id == id)


def connection_key(data_service: str, id: str) -> Any:
    return (connections.c.data_service == data_service) & (connections.c.id == id)


def _data_service(c: sa.Connection, id: str) -> DataServiceRecord:
    row = c.execute(sa.select(data_services).where(data_services.c.id == id)).first()
    if row is None:
        raise NotFoundError(f"no data service '{id}'")
    return DataServiceRecord(**row._asdict())


def get_dataflow(
    c: sa.Connection, data_service: str, id: str, *, lock: bool = False
) -> DataflowRecord:
    """The dataflow; with `lock`, its row is locked until the transaction ends (PostgreSQL),
    so changes to its graph are checked and made one at a time."""
    _data_service(c, data_service)
    query = sa.select(dataflows).where(_dataflow_key(data_service, id))
    row = c.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(f"no dataflow '{id}' in data service '{data_service}'")
    return DataflowRecord(**row._asdict())


def _connection(c: sa.Connection, data_service: str, id: str) -> ConnectionRecord:
    _data_service(c, data_service)
    row = c.execute(sa.select(connections).where(connection_key(data_service, id))).first()
    if row is None:
        raise NotFoundError(f"no connection '{id}' in data service '{data_service}'")
    return ConnectionRecord(**row._asdict())


def component_ids(c: sa.Connection, where: Any) -> list[str]:
    query = sa.select(component_definitions.c.id).where(where).order_by(component_definitions.c.id)
    return list(c.execute(query).scalars())


def delete_components(c: sa.Connection, where: Any, now: datetime.datetime) -> list[str]:
    """Delete the catalog components of the definitions matching `where` (cascading to their
    definitions, partitions, runs, leases and checkpoints), unless one is running."""
    ids = list(c.execute(sa.select(component_definitions.c.component_id).where(where)).scalars())
    for chunk in _chunks(ids):
        active = c.execute(
            sa.select(server_runs.c.id, component_definitions.c.id.label("component"))
            .join(
                component_definitions,
                component_definitions.c.component_id == server_runs.c.component_id,
            )
            .where(server_runs.c.component_id.in_(chunk))
            .where(server_runs.c.status.in_(("queued", "running")))
        ).first()
        if active is not None:
            raise ConflictError(
                f"component '{active.component}' has run {active.id} queued or running; cancel "
                "it (POST /api/v1/runs/{id}/cancel) or wait for it to end"
            )
        held = c.execute(
            sa.select(leases.c.holder, leases.c.expires_at, components.c.name)
            .join(components, components.c.id == leases.c.component_id)
            .where(leases.c.component_id.in_(chunk))
        ).all()
        for lease in held:
            if lease.expires_at > now and not holder_is_dead(lease.holder):
                raise ConflictError(
                    f"catalog component '{lease.name}' is being written by {lease.holder}; wait "
                    "for that run to end"
                )
        c.execute(components.delete().where(components.c.id.in_(chunk)))
    return ids


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

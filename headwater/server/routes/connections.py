"""Connections: settings and a credential shared by components of a data service."""

from __future__ import annotations

from fastapi import APIRouter, Response

from headwater.catalog.resources import InvalidReferenceError
from headwater.client.models import Connection
from headwater.server import convert
from headwater.server.auth import Caller, ServerDep
from headwater.server.routes.common import ERRORS, PREFIX, ConnectionId, DataServiceId, same_id
from headwater.server.state import Server

router = APIRouter(
    prefix=f"{PREFIX}/data-services/{{data_service}}/connections",
    tags=["connections"],
    responses=ERRORS,
)


def _check_credential(server: Server, data_service: str, credential: str | None) -> None:
    if credential is None:
        return
    names = {c.name for c in server.vault.list()}
    if f"{data_service}/{credential}" not in names:
        raise InvalidReferenceError(
            f"data service '{data_service}' has no credential '{credential}'; store it first "
            f"(PUT {PREFIX}/data-services/{data_service}/credentials/{credential})"
        )


@router.get("")
def list_connections(
    data_service: DataServiceId, caller: Caller, server: ServerDep
) -> list[Connection]:
    caller.require(data_service)
    return [convert.connection(r) for r in server.resources.connections(data_service)]


@router.post("", status_code=201)
def create_connection(
    data_service: DataServiceId, body: Connection, caller: Caller, server: ServerDep
) -> Connection:
    caller.require(data_service, write=True)
    server.resources.data_service(data_service)
    _check_credential(server, data_service, body.credential)
    record = server.resources.create_connection(
        data_service,
        body.id,
        name=body.name or body.id,
        description=body.description,
        settings=body.settings,
        credential=body.credential,
        now=server.clock(),
    )
    return convert.connection(record)


@router.get("/{connection}")
def get_connection(
    data_service: DataServiceId, connection: ConnectionId, caller: Caller, server: ServerDep
) -> Connection:
    caller.require(data_service)
    return convert.connection(server.resources.connection(data_service, connection))


@router.put("/{connection}")
def update_connection(
    data_service: DataServiceId,
    connection: ConnectionId,
    body: Connection,
    caller: Caller,
    server: ServerDep,
) -> Connection:
    """Replace a connection's settings and credential; components using it get them at their
    next run."""
    caller.require(data_service, write=True)
    same_id(connection, body.id, "connection")
    server.resources.connection(data_service, connection)
    _check_credential(server, data_service, body.credential)
    record = server.resources.replace_connection(
        data_service,
        connection,
        name=body.name or body.id,
        description=body.description,
        settings=body.settings,
        credential=body.credential,
        now=server.clock(),
    )
    return convert.connection(record)


@router.delete("/{connection}", status_code=204)
def delete_connection(
    data_service: DataServiceId, connection: ConnectionId, caller: Caller, server: ServerDep
) -> Response:
    """Delete a connection (409 while a component uses it)."""
    caller.require(data_service, write=True)
    server.resources.delete_connection(data_service, connection)
    return Response(status_code=204)

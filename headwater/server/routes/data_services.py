"""Data services: namespaces holding dataflows, connections and credentials."""

from __future__ import annotations

from fastapi import APIRouter, Response

from headwater.client.models import DataService
from headwater.server import convert
from headwater.server.auth import Caller, ServerDep
from headwater.server.routes.common import ERRORS, PREFIX, DataServiceId, same_id
from headwater.server.state import Server

router = APIRouter(prefix=f"{PREFIX}/data-services", tags=["data services"], responses=ERRORS)


@router.get("")
def list_data_services(caller: Caller, server: ServerDep) -> list[DataService]:
    """Every data service the access key may see."""
    return [
        convert.data_service(r) for r in server.resources.data_services() if caller.can_see(r.id)
    ]


@router.post("", status_code=201)
def create_data_service(body: DataService, caller: Caller, server: ServerDep) -> DataService:
    """Create a data service (409 when its id is taken)."""
    caller.require(body.id, write=True)
    record = server.resources.create_data_service(
        body.id, name=body.name or body.id, description=body.description, now=server.clock()
    )
    return convert.data_service(record)


@router.get("/{data_service}")
def get_data_service(data_service: DataServiceId, caller: Caller, server: ServerDep) -> DataService:
    caller.require(data_service)
    return convert.data_service(server.resources.data_service(data_service))


@router.put("/{data_service}")
def update_data_service(
    data_service: DataServiceId, body: DataService, caller: Caller, server: ServerDep
) -> DataService:
    """Replace a data service's name and description (its id cannot change)."""
    caller.require(data_service, write=True)
    same_id(data_service, body.id, "data service")
    record = server.resources.replace_data_service(
        data_service, name=body.name or body.id, description=body.description, now=server.clock()
    )
    return convert.data_service(record)


@router.delete("/{data_service}", status_code=204)
def delete_data_service(data_service: DataServiceId, caller: Caller, server: ServerDep) -> Response:
    """Delete a data service with everything in it: dataflows, components and their stored
    data, connections and credentials (409 while one of its components has a run)."""
    caller.require(data_service, write=True)
    removed = server.resources.delete_data_service(data_service, server.clock())
    delete_files(server, removed)
    prefix = f"{data_service}/"
    for credential in server.vault.list():
        if credential.name.startswith(prefix):
            server.vault.delete(credential.name)
    return Response(status_code=204)


def delete_files(server: Server, component_ids: list[str]) -> None:
    """Remove the stored files of deleted components (their catalog rows are gone already)."""
    for component_id in component_ids:
        server.workspace.store.sweep(component_id, set())

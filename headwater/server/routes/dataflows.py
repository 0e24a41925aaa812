"""Dataflows: graphs of components inside a data service."""

from __future__ import annotations

from fastapi import APIRouter, Response

from headwater.client.models import ComponentGraph, Dataflow, GraphEdge, GraphNode
from headwater.server import convert
from headwater.server.auth import Caller, ServerDep
from headwater.server.routes.common import ERRORS, PREFIX, DataflowId, DataServiceId, same_id
from headwater.server.routes.data_services import delete_files

router = APIRouter(
    prefix=f"{PREFIX}/data-services/{{data_service}}/dataflows",
    tags=["dataflows"],
    responses=ERRORS,
)


@router.get("")
def list_dataflows(
    data_service: DataServiceId, caller: Caller, server: ServerDep
) -> list[Dataflow]:
    caller.require(data_service)
    return [convert.dataflow(r) for r in server.resources.dataflows(data_service)]


@router.post("", status_code=201)
def create_dataflow(
    data_service: DataServiceId, body: Dataflow, caller: Caller, server: ServerDep
) -> Dataflow:
    caller.require(data_service, write=True)
    record = server.resources.create_dataflow(
        data_service,
        body.id,
        name=body.name or body.id,
        description=body.description,
        now=server.clock(),
    )
    return convert.dataflow(record)


@router.get("/{dataflow}")
def get_dataflow(
    data_service: DataServiceId, dataflow: DataflowId, caller: Caller, server: ServerDep
) -> Dataflow:
    caller.require(data_service)
    return convert.dataflow(server.resources.dataflow(data_service, dataflow))


@router.put("/{dataflow}")
def update_dataflow(
    data_service: DataServiceId,
    dataflow: DataflowId,
    body: Dataflow,
    caller: Caller,
    server: ServerDep,
) -> Dataflow:
    """Replace a dataflow's name and description (its id cannot change)."""
    caller.require(data_service, write=True)
    same_id(dataflow, body.id, "dataflow")
    record = server.resources.replace_dataflow(
        data_service,
        dataflow,
        name=body.name or body.id,
        description=body.description,
        now=server.clock(),
    )
    return convert.dataflow(record)


@router.delete("/{dataflow}", status_code=204)
def delete_dataflow(
    data_service: DataServiceId, dataflow: DataflowId, caller: Caller, server: ServerDep
) -> Response:
    """Delete a dataflow, its components and their stored data (409 while one has a run)."""
    caller.require(data_service, write=True)
    delete_files(server, server.resources.delete_dataflow(data_service, dataflow, server.clock()))
    return Response(status_code=204)


@router.get("/{dataflow}/graph")
def get_dataflow_graph(
    data_service: DataServiceId, dataflow: DataflowId, caller: Caller, server: ServerDep
) -> ComponentGraph:
    """The dataflow's components (nodes) and which reads which (edges, upstream -> reader)."""
    caller.require(data_service)
    found = server.definitions.components(data_service, dataflow)
    return ComponentGraph(
        nodes=[GraphNode(id=d.id, kind=d.kind, name=d.name) for d in found],  # type: ignore[arg-type]
        edges=[GraphEdge(source=i, target=d.id) for d in found for i in d.inputs],
    )

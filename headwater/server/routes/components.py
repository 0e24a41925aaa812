"""Components: read connectors of every kind, with their code as text, and their runs."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from headwater.client.models import Component, Run
from headwater.server import convert
from headwater.server.auth import Caller, ServerDep
from headwater.server.routes.common import (
    ERRORS,
    PREFIX,
    ComponentId,
    DataflowId,
    DataServiceId,
    run_model,
    same_id,
)
from headwater.server.routes.data_services import delete_files

router = APIRouter(
    prefix=f"{PREFIX}/data-services/{{data_service}}/dataflows/{{dataflow}}/components",
    tags=["components"],
    responses=ERRORS,
)


@router.get("")
def list_components(
    data_service: DataServiceId, dataflow: DataflowId, caller: Caller, server: ServerDep
) -> list[Component]:
    caller.require(data_service)
    return [convert.component(d) for d in server.definitions.components(data_service, dataflow)]


@router.post("", status_code=201)
def create_component(
    data_service: DataServiceId,
    dataflow: DataflowId,
    body: Component,
    caller: Caller,
    server: ServerDep,
) -> Component:
    """Create a component from its code (compiled to check it, not run). Its data is stored as
    catalog component `<data service>__<dataflow>__<component>`."""
    caller.require(data_service, write=True)
    record = server.definitions.create_component(
        data_service, dataflow, body.id, convert.component_fields(body), server.clock()
    )
    server.scheduler.wake()  # (a schedule takes effect now, not at the scheduler's next look)
    return convert.component(record)


@router.get("/{component}")
def get_component(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    caller: Caller,
    server: ServerDep,
) -> Component:
    caller.require(data_service)
    return convert.component(server.definitions.component(data_service, dataflow, component))


@router.put("/{component}")
def update_component(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    body: Component,
    caller: Caller,
    server: ServerDep,
) -> Component:
    """Replace a component's definition; the next run uses it (a run in progress keeps the
    code it started with). Its kind cannot change (409)."""
    caller.require(data_service, write=True)
    same_id(component, body.id, "component")
    record = server.definitions.replace_component(
        data_service, dataflow, component, convert.component_fields(body), server.clock()
    )
    server.scheduler.wake()
    return convert.component(record)


@router.delete("/{component}", status_code=204)
def delete_component(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    caller: Caller,
    server: ServerDep,
) -> Response:
    """Delete a component with its stored partitions and runs (409 while it has a run, or
    while another component reads it)."""
    caller.require(data_service, write=True)
    removed = server.definitions.delete_component(data_service, dataflow, component, server.clock())
    server.scheduler.wake()
    delete_files(server, [removed])
    return Response(status_code=204)


@router.post("/{component}/refresh", status_code=202)
def refresh_component(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    caller: Caller,
    server: ServerDep,
) -> Run:
    """Start a run of the component in the server's worker pool; answers at once with the
    queued run. Follow it with `GET /api/v1/runs/{id}/logs`. 409, naming the run, while the
    component already has one queued or running."""
    caller.require(data_service, write=True)
    definition = server.definitions.component(data_service, dataflow, component)
    record = server.pool.trigger(definition, caller.access_key)
    return run_model(server, record)


@router.get("/{component}/runs")
def list_component_runs(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    caller: Caller,
    server: ServerDep,
    limit: int = Query(20, ge=1, le=1000),
) -> list[Run]:
    """The component's runs requested through the API, newest first."""
    caller.require(data_service)
    definition = server.definitions.component(data_service, dataflow, component)
    return [run_model(server, r) for r in server.runs.list(definition.component_id, limit)]

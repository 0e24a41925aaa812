"""A component's stored data: partitions, schema, and records (JSON pages or Arrow IPC)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from headwater.client.models import (
    ComponentSchema,
    LineageInput,
    Partition,
    PartitionLineage,
    Records,
    SchemaField,
)
from headwater.errors import NotFoundError
from headwater.server import convert, records
from headwater.server.auth import Caller, ServerDep
from headwater.server.routes.common import ERRORS, PREFIX, ComponentId, DataflowId, DataServiceId

router = APIRouter(
    prefix=f"{PREFIX}/data-services/{{data_service}}/dataflows/{{dataflow}}/components",
    tags=["data"],
    responses=ERRORS,
)

_RECORDS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of rows as JSON, or every row (of one partition, when given) "
        f"as an Arrow IPC stream when the request accepts `{records.ARROW_STREAM}`.",
        "content": {records.ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get("/{component}/partitions")
def get_partitions(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    caller: Caller,
    server: ServerDep,
) -> list[Partition]:
    """The component's committed partitions, by name."""
    caller.require(data_service)
    definition = server.definitions.component(data_service, dataflow, component)
    found = server.workspace.catalog.partitions(definition.component_id)
    return [convert.partition(p) for p in found]


@router.get("/{component}/lineage")
def get_lineage(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    caller: Caller,
    server: ServerDep,
) -> list[PartitionLineage]:
    """Partition-level lineage: for each partition of a transform, the input partitions (and
    their fingerprints) it was computed from. Components of other kinds have none."""
    caller.require(data_service)
    definition = server.definitions.component(data_service, dataflow, component)
    found = server.workspace.catalog.lineage(definition.component_id)
    ids: dict[str, str] = {}  # catalog component id -> the input's id in the dataflow
    for edges in found.values():
        for e in edges:
            if e.input_component_id not in ids:
                upstream = server.definitions.component_by_catalog_id(e.input_component_id)
                ids[e.input_component_id] = upstream.id
    return [
        PartitionLineage(
            partition=name,
            inputs=[
                LineageInput(
                    component=ids[e.input_component_id],
                    partition=e.input_partition,
                    fingerprint=e.input_fingerprint,
                )
                for e in edges
            ],
        )
        for name, edges in found.items()
    ]


@router.get("/{component}/schema")
def get_schema(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    caller: Caller,
    server: ServerDep,
) -> ComponentSchema:
    """The columns readers see (every committed partition's schema, merged)."""
    caller.require(data_service)
    definition = server.definitions.component(data_service, dataflow, component)
    schema = server.workspace.catalog.component_schema(definition.component_id)
    return ComponentSchema(
        fields=[SchemaField(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema]
    )


@router.get("/{component}/records", response_model=Records, responses=_RECORDS_RESPONSES)
def get_records(
    data_service: DataServiceId,
    dataflow: DataflowId,
    component: ComponentId,
    caller: Caller,
    server: ServerDep,
    limit: int = Query(100, ge=1, le=10_000, description="Rows per page (JSON only)."),
    cursor: str | None = Query(
        None, max_length=2000, description="Where the page starts: a `next_cursor`."
    ),
    partition: str | None = Query(None, max_length=10_000, description="Only this partition."),
    accept: str | None = Header(None, include_in_schema=False),
) -> Any:
    """The component's rows in partition order: a JSON page (`limit`, `cursor`), or, for
    `Accept: application/vnd.apache.arrow.stream`, all of them as an Arrow IPC stream."""
    caller.require(data_service)
    definition = server.definitions.component(data_service, dataflow, component)
    catalog, store = server.workspace.catalog, server.workspace.store
    found = catalog.partitions(definition.component_id)
    if partition is not None:
        found = [p for p in found if p.name == partition]
        if not found:
            raise NotFoundError(f"component '{component}' has no partition {partition!r}")
    schema = catalog.component_schema(definition.component_id)
    if accept is not None and records.ARROW_STREAM in accept:
        return StreamingResponse(
            records.arrow_stream(store, found, schema), media_type=records.ARROW_STREAM
        )
    rows, next_cursor = records.page(store, found, schema, limit=limit, cursor=cursor)
    return Records(rows=rows, next_cursor=next_cursor)

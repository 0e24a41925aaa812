"""Component definitions: the components of dataflows, as declared through the server's API.

Each definition owns one catalog `components` row (see `headwater.catalog.resources` for the
naming). A component's `inputs` (the components of its dataflow it reads: a processor's or
write connector's one, a transform's several) are the edges of its dataflow's graph, which is
kept acyclic.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from headwater.catalog import Catalog, connect
from headwater.catalog.resources import (
    MAX_CATALOG_NAME,
    ConflictError,
    InvalidReferenceError,
    catalog_name,
    connection_key,
    delete_components,
    exists,
    get_dataflow,
)
from headwater.catalog.tables import (
    component_definitions,
    component_inputs,
    components,
    connections,
)
from headwater.errors import NotFoundError


@dataclass(frozen=True)
class DefinitionRecord:
    """A component as declared through the API; `definition` is its kind's declaration."""

    data_service: str
    dataflow: str
    id: str
    component_id: str  # the catalog `components` row
    name: str
    description: str | None
    kind: str
    definition: dict[str, Any]
    connection: str | None
    inputs: tuple[str, ...]
    schedule: dict[str, Any] | None
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @property
    def catalog_name(self) -> str:
        return catalog_name(self.data_service, self.dataflow, self.id)


@dataclass(frozen=True)
class ComponentFields:
    """What a create or replace of a component sets."""

    name: str
    description: str | None
    kind: str
    definition: dict[str, Any]
    connection: str | None
    inputs: tuple[str, ...] = ()
    schedule: dict[str, Any] | None = None


class Definitions:
    """Create, read, replace and delete component definitions, in the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.engine = catalog.engine

    def _reading(self) -> sa.Connection:
        return self.engine.connect().execution_options(**{connect.READ_ONLY: True})

    def create_component(
        self,
        data_service: str,
        dataflow: str,
        id: str,
        fields: ComponentFields,
        now: datetime.datetime,
    ) -> DefinitionRecord:
        name = catalog_name(data_service, dataflow, id)
        with self.engine.begin() as c:
            get_dataflow(c, data_service, dataflow, lock=True)  # one graph change at a time
            if exists(c, component_definitions, _component_key(data_service, dataflow, id)):
                raise ConflictError(f"component '{id}' already exists in dataflow '{dataflow}'")
            if len(name) > MAX_CATALOG_NAME:
                raise InvalidReferenceError(
                    f"component '{id}' would be stored as catalog component '{name}' "
                    f"({len(name)} characters; at most {MAX_CATALOG_NAME}): use shorter ids"
                )
            if exists(c, components, components.c.name == name):
                raise ConflictError(
                    f"the catalog already holds a component named '{name}' that the server "
                    "does not manage (made by `headwater run`?); choose other ids"
                )
            _check_references(c, data_service, dataflow, id, fields)
            component_id = uuid.uuid4().hex
            c.execute(
                components.insert().values(
                    id=component_id,
                    name=name,
                    kind=fields.kind,
                    source_ref=f"server:{data_service}/{dataflow}/{id}",
                    settings={},
                    code_version="",
                    created_at=now,
                    updated_at=now,
                )
            )
            c.execute(
                component_definitions.insert().values(
                    data_service=data_service,
                    dataflow=dataflow,
                    id=id,
                    component_id=component_id,
                    created_at=now,
                    updated_at=now,
                    **_field_values(fields),
                )
            )
            _set_inputs(c, data_service, dataflow, id, fields.inputs)
        return self.component(data_service, dataflow, id)

    def component(self, data_service: str, dataflow: str, id: str) -> DefinitionRecord:
        with self._reading() as c:
            return _component(c, data_service, dataflow, id)

    def component_by_catalog_id(self, component_id: str) -> DefinitionRecord:
        with self._reading() as c:
            row = c.execute(
                sa.select(component_definitions).where(
                    component_definitions.c.component_id == component_id
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no server component stores catalog component {component_id}")
            return _record(c, row)

    def components(self, data_service: str, dataflow: str) -> list[DefinitionRecord]:
        with self._reading() as c:
            get_dataflow(c, data_service, dataflow)
            rows = c.execute(
                sa.select(component_definitions)
                .where(component_definitions.c.data_service == data_service)
                .where(component_definitions.c.dataflow == dataflow)
                .order_by(component_definitions.c.id)
            ).all()
            edges = _edges(c, data_service, dataflow)
            return [_record(c, r, edges.get(r.id, ())) for r in rows]

    def scheduled(self) -> list[DefinitionRecord]:
        """Every component, of every dataflow, that has a schedule (the scheduler asks every
        few seconds: one query for the inputs of each dataflow, not of each component)."""
        with self._reading() as c:
            rows = c.execute(
                sa.select(component_definitions)
                .where(component_definitions.c.schedule.is_not(None))
                .order_by(
                    component_definitions.c.data_service,
                    component_definitions.c.dataflow,
                    component_definitions.c.id,
                )
            ).all()
            edges = {
                flow: _edges(c, *flow) for flow in {(r.data_service, r.dataflow) for r in rows}
            }
            return [_record(c, r, edges[r.data_service, r.dataflow].get(r.id, ())) for r in rows]

    def readers(self, data_service: str, dataflow: str, id: str) -> list[DefinitionRecord]:
        """The components of the dataflow that read component `id`, by id."""
        with self._reading() as c:
            ids = _reader_ids(c, data_service, dataflow, id)
            return [_component(c, data_service, dataflow, i) for i in ids]

    def replace_component(
        self,
        data_service: str,
        dataflow: str,
        id: str,
        fields: ComponentFields,
        now: datetime.datetime,
    ) -> DefinitionRecord:
        with self.engine.begin() as c:
            get_dataflow(c, data_service, dataflow, lock=True)
            before = _component(c, data_service, dataflow, id)
            if before.kind != fields.kind:
                raise ConflictError(
                    f"component '{id}' is a {before.kind} component; its kind cannot change to "
                    f"{fields.kind} (its stored partitions came from a {before.kind} "
                    "connector): delete it and create it again"
                )
            _check_references(c, data_service, dataflow, id, fields)
            c.execute(
                component_definitions.update()
                .where(_component_key(data_service, dataflow, id))
                .values(updated_at=now, **_field_values(fields))
            )
            _set_inputs(c, data_service, dataflow, id, fields.inputs)
        return self.component(data_service, dataflow, id)

    def delete_component(
        self, data_service: str, dataflow: str, id: str, now: datetime.datetime
    ) -> str:
        """Delete a component and all its stored data; returns its catalog component id."""
        with self.engine.begin() as c:
            get_dataflow(c, data_service, dataflow, lock=True)
            record = _component(c, data_service, dataflow, id)
            readers = _reader_ids(c, data_service, dataflow, id)
            if readers:
                raise ConflictError(
                    f"component '{id}' is the input of {', '.join(readers)}; change or delete "
                    "them first"
                )
            delete_components(c, component_definitions.c.component_id == record.component_id, now)
        return record.component_id


def _component_key(data_service: str, dataflow: str, id: str) -> Any:
    return (
        (component_definitions.c.data_service == data_service)
        & (component_definitions.c.dataflow == dataflow)
        & (component_definitions.c.id == id)
    )


def _component(c: sa.Connection, data_service: str, dataflow: str, id: str) -> DefinitionRecord:
    get_dataflow(c, data_service, dataflow)
    row = c.execute(
        sa.select(component_definitions).where(_component_key(data_service, dataflow, id))
    ).first()
    if row is None:
        raise NotFoundError(
            f"no component '{id}' in dataflow '{dataflow}' of data service '{data_service}'"
        )
    return _record(c, row)


def _record(c: sa.Connection, row: Any, inputs: tuple[str, ...] | None = None) -> DefinitionRecord:
    if inputs is None:
        inputs = _edges(c, row.data_service, row.dataflow, row.id).get(row.id, ())
    return DefinitionRecord(**row._asdict(), inputs=inputs)


def _reader_ids(c: sa.Connection, data_service: str, dataflow: str, id: str) -> list[str]:
    """The ids of the components of the dataflow that read component `id`, sorted."""
    return list(
        c.execute(
            sa.select(component_inputs.c.component)
            .distinct()
            .where(component_inputs.c.data_service == data_service)
            .where(component_inputs.c.dataflow == dataflow)
            .where(component_inputs.c.input == id)
            .order_by(component_inputs.c.component)
        ).scalars()
    )


def _edges(
    c: sa.Connection, data_service: str, dataflow: str, id: str | None = None
) -> dict[str, tuple[str, ...]]:
    """Each component's inputs, in declared order (of one component when `id` is given)."""
    query = (
        sa.select(component_inputs.c.component, component_inputs.c.input)
        .where(component_inputs.c.data_service == data_service)
        .where(component_inputs.c.dataflow == dataflow)
        .order_by(component_inputs.c.component, component_inputs.c.position)
    )
    if id is not None:
        query = query.where(component_inputs.c.component == id)
    found: dict[str, list[str]] = {}
    for component, input in c.execute(query):
        found.setdefault(component, []).append(input)
    return {k: tuple(v) for k, v in found.items()}


def _set_inputs(
    c: sa.Connection, data_service: str, dataflow: str, id: str, inputs: tuple[str, ...]
) -> None:
    c.execute(
        component_inputs.delete()
        .where(component_inputs.c.data_service == data_service)
        .where(component_inputs.c.dataflow == dataflow)
        .where(component_inputs.c.component == id)
    )
    if inputs:
        c.execute(
            component_inputs.insert(),
            [
                {
                    "data_service": data_service,
                    "dataflow": dataflow,
                    "component": id,
                    "position": n,
                    "input": input,
                }
                for n, input in enumerate(inputs)
            ],
        )


def _field_values(fields: ComponentFields) -> dict[str, Any]:
    return {
        "name": fields.name,
        "description": fields.description,
        "kind": fields.kind,
        "definition": fields.definition,
        "connection": fields.connection,
        "schedule": fields.schedule,
    }


def _check_references(
    c: sa.Connection, data_service: str, dataflow: str, id: str, fields: ComponentFields
) -> None:
    if fields.connection is not None and not exists(
        c, connections, connection_key(data_service, fields.connection)
    ):
        raise InvalidReferenceError(
            f"component '{id}' uses connection '{fields.connection}', which data service "
            f"'{data_service}' does not have; create the connection first"
        )
    if len(set(fields.inputs)) != len(fields.inputs):
        raise InvalidReferenceError(f"component '{id}' names the same input more than once")
    edges = _edges(c, data_service, dataflow)
    edges[id] = fields.inputs
    for input in fields.inputs:
        if input == id:
            raise InvalidReferenceError(f"component '{id}' cannot read itself")
        kind = c.execute(
            sa.select(component_definitions.c.kind).where(
                _component_key(data_service, dataflow, input)
            )
        ).scalar()
        if kind is None:
            raise InvalidReferenceError(
                f"component '{id}' reads component '{input}', which dataflow '{dataflow}' does "
                "not have; create the input first"
            )
        if kind == "write":
            raise InvalidReferenceError(
                f"component '{id}' reads '{input}', a write connector, which stores nothing; "
                "read what it writes (its input) instead"
            )
    cycle = _cycle_through(id, edges)
    if cycle:
        raise InvalidReferenceError(
            f"component '{id}' cannot read {', '.join(repr(i) for i in fields.inputs)}: the "
            f"inputs would form a cycle ({' -> '.join(cycle)})"
        )


def _cycle_through(start: str, edges: dict[str, tuple[str, ...]]) -> list[str]:
    """A path of inputs from `start` back to itself, or [] when there is none. The graph was
    acyclic before `start`'s inputs changed, so any cycle passes through `start`."""
    stack = [[start]]
    seen: set[str] = set()
    while stack:
        path = stack.pop()
        for upstream in edges.get(path[-1], ()):
            if upstream == start:
                return [*path, start]
            if upstream not in seen:
                seen.add(upstream)
                stack.append([*path, upstream])
    return []

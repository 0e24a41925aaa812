"""Component definitions: the components of dataflows, as declared through the server's API.

Each definition owns one catalog `components` row (see `headwater.catalog.resources` for the
naming); a processor's `input_id` is an edge of its dataflow's graph.
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
    component_ids,
    connection_key,
    delete_components,
    exists,
    get_dataflow,
)
from headwater.catalog.tables import component_definitions, components, connections
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
    input_id: str | None
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
    input_id: str | None


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
            get_dataflow(c, data_service, dataflow)
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
        return DefinitionRecord(**row._asdict())

    def components(self, data_service: str, dataflow: str) -> list[DefinitionRecord]:
        with self._reading() as c:
            get_dataflow(c, data_service, dataflow)
            rows = c.execute(
                sa.select(component_definitions)
                .where(component_definitions.c.data_service == data_service)
                .where(component_definitions.c.dataflow == dataflow)
                .order_by(component_definitions.c.id)
            )
            return [DefinitionRecord(**r._asdict()) for r in rows]

    def replace_component(
        self,
        data_service: str,
        dataflow: str,
        id: str,
        fields: ComponentFields,
        now: datetime.datetime,
    ) -> DefinitionRecord:
        with self.engine.begin() as c:
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
        return self.component(data_service, dataflow, id)

    def delete_component(
        self, data_service: str, dataflow: str, id: str, now: datetime.datetime
    ) -> str:
        """Delete a component and all its stored data; returns its catalog component id."""
        with self.engine.begin() as c:
            record = _component(c, data_service, dataflow, id)
            readers = component_ids(
                c,
                (component_definitions.c.data_service == data_service)
                & (component_definitions.c.dataflow == dataflow)
                & (component_definitions.c.input_id == id),
            )
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
    return DefinitionRecord(**row._asdict())


def _field_values(fields: ComponentFields) -> dict[str, Any]:
    return {
        "name": fields.name,
        "description": fields.description,
        "kind": fields.kind,
        "definition": fields.definition,
        "connection": fields.connection,
        "input_id": fields.input_id,
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
    seen = {id}
    upstream = fields.input_id
    while upstream is not None:
        if upstream in seen:
            raise InvalidReferenceError(
                f"component '{id}' cannot read '{fields.input_id}': the inputs would form a cycle"
            )
        seen.add(upstream)
        row = c.execute(
            sa.select(component_definitions.c.input_id).where(
                _component_key(data_service, dataflow, upstream)
            )
        ).first()
        if row is None:
            raise InvalidReferenceError(
                f"component '{id}' reads component '{upstream}', which dataflow '{dataflow}' does "
                "not have; create the input first"
            )
        upstream = row.input_id

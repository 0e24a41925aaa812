"""Planning: what an applier would change on a server, found by reading it only, and every
problem that stops a definition from being applied, found before anything is sent.

Resources are compared by the fields a definition declares (never the ones the server fills
in: timestamps, the data service, dataflow, catalog name and kind of a component); a name left
out is the id, as on the server. A credential is compared by asking the server whether its
secret matches (the server never returns it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import pydantic

from headwater.client import models
from headwater.client.client import Client
from headwater.client.definitions import Credential, Dataflow, DataService
from headwater.client.errors import NotFoundError
from headwater.client.graph import cycles, readers_of, topological
from headwater.client.plan import (
    Action,
    Change,
    FieldChange,
    Plan,
    PlanError,
    Resource,
    Step,
    field_changes,
)
from headwater.errors import HeadwaterError

# What the server fills in: never declared, never compared.
SERVER_FILLED = {"data_service", "dataflow", "catalog_name", "created_at", "updated_at", "kind"}


def declared(model: models.Model) -> dict[str, Any]:
    """A resource's declared fields, as JSON (a missing name is the id, as the server sets)."""
    values = model.model_dump(mode="json", exclude=SERVER_FILLED)
    if values.get("name") is None and "id" in values:
        values["name"] = values["id"]
    return values


class Planner:
    """Reads the server and collects changes, steps (in call order) and errors."""

    def __init__(self, client: Client, data_service_id: str) -> None:
        self.client = client
        self.ds = data_service_id
        self.errors: list[str] = []
        self.changes: list[Change] = []
        self.first: list[Step] = []  # before components: creations and updates
        self.components: list[Step] = []
        self.last: list[Step] = []  # after components: deletions, in order

    def finish(self) -> Plan:
        if self.errors:
            raise PlanError(self.errors)
        return Plan(self.changes, self.first + self.components + self.last)

    def add(
        self,
        action: Action,
        resource: Resource,
        path: str,
        *,
        label: str | None = None,
        desired: models.Model | None = None,
        old: models.Model | None = None,
        note: str | None = None,
        secret: str | None = None,
    ) -> Change:
        fields: tuple[FieldChange, ...] = ()
        if old is not None and desired is not None:
            fields = field_changes(declared(old), declared(desired))
        change = Change(
            action, resource, path, label or resource, fields, note, desired=desired, secret=secret
        )
        self.changes.append(change)
        return change

    def compare(
        self, resource: Resource, path: str, desired: models.Model, old: models.Model | None
    ) -> None:
        """Plan the creation or update of a data service, connection or dataflow."""
        if old is None:
            self.first.append(Step("create", self.add("create", resource, path, desired=desired)))
        elif declared(old) != declared(desired):
            change = self.add("update", resource, path, desired=desired, old=old)
            self.first.append(Step("update", change))
        else:
            self.add("unchanged", resource, path)

    # -- a data service -------------------------------------------------------------------------

    def data_service(self, definition: DataService, *, delete: bool) -> None:
        ds = self.ds
        for what, ids in (
            ("dataflow", [d.id for d in definition.dataflows]),
            ("connection", [c.id for c in definition.connections]),
            ("credential", [c.name for c in definition.credentials]),
        ):
            self.duplicates(what, ds, ids)
        try:
            current: models.DataService | None = self.client.get_data_service(ds)
        except NotFoundError:
            current = None
        credentials: set[str] = set()
        connections: dict[str, models.Connection] = {}
        dataflows: dict[str, models.Dataflow] = {}
        if current is not None:
            credentials = {c.name for c in self.client.list_credentials(ds)}
            connections = {c.id: c for c in self.client.list_connections(ds)}
            dataflows = {d.id: d for d in self.client.list_dataflows(ds)}
        self.compare("data service", ds, definition.to_model(), current)

        declared_credentials = _first({c.name: c for c in definition.credentials[::-1]})
        for credential in declared_credentials.values():
            self.credential(credential, credential.name in credentials)
        available = _Available("credential", set(declared_credentials), credentials, delete)
        declared_connections = _first({c.id: c for c in definition.connections[::-1]})
        for connection in declared_connections.values():
            path = f"{ds}/{connection.id}"
            self.check_reference(path, "connection", connection.credential, available)
            self.compare("connection", path, connection.to_model(), connections.get(connection.id))

        available = _Available("connection", set(declared_connections), set(connections), delete)
        declared_dataflows = _first({d.id: d for d in definition.dataflows[::-1]})
        for dataflow in declared_dataflows.values():
            path = f"{ds}/{dataflow.id}"
            self.compare("dataflow", path, dataflow.to_model(), dataflows.get(dataflow.id))
        for dataflow in declared_dataflows.values():
            existing = (
                self.client.list_components(ds, dataflow.id) if dataflow.id in dataflows else []
            )
            self.dataflow_components(dataflow, existing, connections=available, delete=delete)
        if not delete:
            return
        for id in sorted(set(dataflows) - set(declared_dataflows)):
            n = len(self.client.list_components(ds, id))
            change = self.add("delete", "dataflow", f"{ds}/{id}", note=f"with its {n} component(s)")
            self.last.append(Step("delete", change))
        for id in sorted(set(connections) - set(declared_connections)):
            self.last.append(Step("delete", self.add("delete", "connection", f"{ds}/{id}")))
        for name in sorted(credentials - set(declared_credentials)):
            self.last.append(Step("delete", self.add("delete", "credential", f"{ds}/{name}")))

    def duplicates(self, what: str, parent: str, ids: list[str]) -> None:
        for id in dict.fromkeys(ids):
            if ids.count(id) > 1:
                self.errors.append(
                    f"{parent}/{id}: {ids.count(id)} {what}s have this id; ids must be unique"
                )

    def credential(self, credential: Credential, on_server: bool) -> None:
        path = f"{self.ds}/{credential.name}"
        try:
            secret = credential.read()
        except OSError as exc:
            self.errors.append(f"{path}: cannot read {credential.source}: {exc.strerror or exc}")
            return
        if secret is None:
            if on_server:
                note = f"value not given ({credential.absent}); kept"
                self.add("unchanged", "credential", path, note=note)
            else:
                self.errors.append(
                    f"{path}: the credential has no value ({credential.absent}) and the server "
                    "has none; set it, or store the secret first"
                )
            return
        try:
            models.CredentialSecret(secret=secret)
        except pydantic.ValidationError as exc:
            reason = exc.errors()[0]["msg"]  # (the secret itself is never shown)
            self.errors.append(f"{path}: the secret in {credential.source} is refused: {reason}")
            return
        if not on_server:
            change = self.add("create", "credential", path, secret=secret)
        elif self.client.verify_credential(self.ds, credential.name, secret):
            self.add("unchanged", "credential", path)
            return
        else:
            change = self.add(
                "update", "credential", path, note="its secret changes", secret=secret
            )
        self.first.append(Step("update" if on_server else "create", change))

    def check_reference(
        self, path: str, resource: str, name: str | None, available: _Available
    ) -> None:
        """That the connection or credential `name` a resource uses will be there."""
        missing = available.missing(name)
        if missing:
            self.errors.append(f"{path}: the {resource} uses {available.what} '{name}', {missing}")

    # -- a dataflow alone -----------------------------------------------------------------------

    def one_dataflow(self, dataflow: Dataflow, *, delete: bool) -> None:
        ds = self.ds
        try:
            self.client.get_data_service(ds)
        except NotFoundError:
            self.errors.append(
                f"{ds}: the data service does not exist; create it first (or apply a "
                "DataService definition holding this dataflow)"
            )
            return
        dataflows = {d.id: d for d in self.client.list_dataflows(ds)}
        old = dataflows.get(dataflow.id)
        self.compare("dataflow", f"{ds}/{dataflow.id}", dataflow.to_model(), old)
        connections = {c.id for c in self.client.list_connections(ds)}
        available = _Available("connection", None, connections, delete)
        existing = self.client.list_components(ds, dataflow.id) if old is not None else []
        self.dataflow_components(dataflow, existing, connections=available, delete=delete)

    # -- components -----------------------------------------------------------------------------

    def dataflow_components(
        self,
        dataflow: Dataflow,
        existing: list[models.Component],
        *,
        connections: _Available,
        delete: bool,
    ) -> None:
        prefix = f"{self.ds}/{dataflow.id}"
        self.duplicates("component", prefix, [c.id for c in dataflow.components])
        desired = _first({c.id: c.to_model() for c in dataflow.components[::-1]})
        current = {c.id: c for c in existing}
        errors = len(self.errors)
        for id, component in desired.items():
            self.check_component(f"{prefix}/{id}", component)
            self.check_reference(f"{prefix}/{id}", "component", component.connection, connections)
        graph: dict[str, list[str]] = {id: c.inputs for id, c in desired.items()}
        if not delete:  # the server's undeclared components stay, reading what they read
            graph.update({id: c.inputs for id, c in current.items() if id not in desired})
        self.check_graph(prefix, desired, graph, current, delete)
        if len(self.errors) > errors:
            return
        planned = _order_components(prefix, desired, current, graph, delete)
        if planned.errors:
            self.errors.extend(planned.errors)
            return
        self.changes.extend(planned.changes)
        self.components.extend(planned.early + planned.main + planned.late)

    def check_component(self, path: str, component: models.Component) -> None:
        """The server's own checks of a component: its code compiles, its SQL reads its inputs
        only, its settings and schedule are valid, its catalog name is not too long."""
        from headwater.catalog.resources import MAX_CATALOG_NAME, catalog_name
        from headwater.server.convert import component_fields

        try:
            component_fields(component)
        except (HeadwaterError, ValueError) as exc:
            self.errors.append(f"{path}: {exc}")
        ds, dataflow, id = path.split("/")
        stored = catalog_name(ds, dataflow, id)
        if len(stored) > MAX_CATALOG_NAME:
            self.errors.append(
                f"{path}: it would be stored as catalog component '{stored}' ({len(stored)} "
                f"characters; at most {MAX_CATALOG_NAME}): use shorter ids"
            )

    def check_graph(
        self,
        prefix: str,
        desired: dict[str, models.Component],
        graph: dict[str, list[str]],
        current: dict[str, models.Component],
        delete: bool,
    ) -> None:
        for id, component in desired.items():
            inputs = component.inputs
            for input in dict.fromkeys(inputs):
                if inputs.count(input) > 1:
                    self.errors.append(f"{prefix}/{id}: it names input '{input}' more than once")
                if input in graph:
                    read = desired.get(input) or current.get(input)
                    if read is not None and read.kind == "write":
                        self.errors.append(
                            f"{prefix}/{id}: it reads '{input}', a write connector, which stores "
                            "nothing; read what it writes (its input) instead"
                        )
                    continue
                why = "which the definition does not declare"
                if delete and input in current:
                    why += ", so the server's is deleted: declare it, or apply with delete=False"
                elif not delete:
                    why = "which neither the definition declares nor the server has"
                self.errors.append(f"{prefix}/{id}: it reads '{input}', {why}")
        for cycle in cycles(graph):
            self.errors.append(
                f"{prefix}: the components' inputs form a cycle: {' -> '.join(cycle)} (each "
                "reads the next); a dataflow's graph must be acyclic"
            )


@dataclass
class _Ordered:
    """A dataflow's component changes (as shown), their calls in three phases, or errors."""

    changes: list[Change] = field(default_factory=list)
    early: list[Step] = field(default_factory=list)  # deletions of replaced components
    main: list[Step] = field(default_factory=list)  # creations and updates, inputs first
    late: list[Step] = field(default_factory=list)  # deletions, readers first
    errors: list[str] = field(default_factory=list)


def _order_components(
    prefix: str,
    desired: dict[str, models.Component],
    current: dict[str, models.Component],
    graph: dict[str, list[str]],
    delete: bool,
) -> _Ordered:
    """The component changes and their calls. The graph is acyclic and complete here.

    A component whose kind changes cannot be updated: it is deleted and created again, and so
    is every component reading it, directly or not (the server does not delete a component
    that is read). Those deletions come first, readers first; then creations and updates with
    inputs first (so an update never reads what is missing, nor closes a cycle with readers
    not yet updated); then the other deletions, readers first (by then no kept component reads
    them).
    """
    out = _Ordered()
    current_graph = {id: c.inputs for id, c in current.items()}
    kind_changed = {
        id for id in desired.keys() & current.keys() if desired[id].kind != current[id].kind
    }
    replaced = readers_of(current_graph, kind_changed)
    if not delete:  # replacing needs every reader deleted, and undeclared ones must stay
        for id in sorted(kind_changed):
            undeclared = sorted(readers_of(current_graph, {id}) - desired.keys())
            if undeclared:
                out.errors.append(
                    f"{prefix}/{id}: its kind changes ({current[id].kind} -> "
                    f"{desired[id].kind}), so it is deleted and created again with the "
                    f"components reading it, which include undeclared {', '.join(undeclared)}: "
                    "declare them, or apply with delete=True"
                )
        if out.errors:
            return out
    delete_order = topological(current_graph)[::-1]
    early = {
        id: _replace_change(prefix, id, desired, current, kind_changed)
        for id in delete_order
        if id in replaced
    }
    out.early = [Step("delete", change) for change in early.values()]
    for id in topological(graph):
        if id not in desired:
            continue
        component, path = desired[id], f"{prefix}/{id}"
        old = current.get(id)
        if old is None:
            change = Change("create", "component", path, component.kind, desired=component)
            out.changes.append(change)
            out.main.append(Step("create", change))
        elif id in early:
            out.changes.append(early[id])
            out.main.append(Step("create", early[id]))
        elif declared(old) != declared(component):
            fields = field_changes(declared(old), declared(component))
            change = Change("update", "component", path, component.kind, fields, desired=component)
            out.changes.append(change)
            out.main.append(Step("update", change))
        else:
            out.changes.append(Change("unchanged", "component", path, component.kind))
    if delete:
        for id in delete_order:
            if id in desired:
                continue
            if id in early:
                out.changes.append(early[id])
            else:
                change = Change("delete", "component", f"{prefix}/{id}", current[id].kind)
                out.changes.append(change)
                out.late.append(Step("delete", change))
    return out


def _replace_change(
    prefix: str,
    id: str,
    desired: dict[str, models.Component],
    current: dict[str, models.Component],
    kind_changed: set[str],
) -> Change:
    old, path = current[id], f"{prefix}/{id}"
    new = desired.get(id)
    if new is None:  # an undeclared reader of a replaced component: deleted for good
        return Change("delete", "component", path, old.kind)
    if id in kind_changed:
        label, note = f"{old.kind} -> {new.kind}", "its kind changes; its stored data is deleted"
        fields: tuple[Any, ...] = ()
    else:
        reads = [i for i in old.inputs if i in current]
        label, note = (
            new.kind,
            f"it reads {', '.join(reads)}, which is replaced; its data is deleted",
        )
        fields = field_changes(declared(old), declared(new))
    return Change("replace", "component", path, label, fields, note, desired=new)


T = TypeVar("T")


def _first(built_from_reversed: dict[str, T]) -> dict[str, T]:
    """The first definition of each id, in declared order, from a dict built over the reversed
    list (where the first definition is written last, so it wins)."""
    return dict(reversed(built_from_reversed.items()))


@dataclass(frozen=True)
class _Available:
    """The connections (or credentials) a resource may use: those declared (None for a
    dataflow applied alone) and, unless undeclared ones are deleted, the server's."""

    what: str
    declared: set[str] | None
    server: set[str]
    delete: bool

    def missing(self, name: str | None) -> str | None:
        """Why `name` will not be there, or None when it will (or is None)."""
        if name is None:
            return None
        if self.declared is None:
            return None if name in self.server else "which the data service does not have"
        if name in self.declared or (name in self.server and not self.delete):
            return None
        if name in self.server:
            return (
                "which the definition does not declare, so the server's is deleted: declare "
                "it, or apply with delete=False"
            )
        return "which neither the definition declares nor the server has"

"""ConnectorRegistry: which task connector serves which (task type, version)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from headwater.tasks.connector import AsyncConnector, SyncConnector, TaskConnector
from headwater.tasks.errors import (
    ConnectorNotFoundError,
    DuplicateConnectorError,
    InvalidConnectorError,
)
from headwater.tasks.resource import ResourceMeta

_INT32 = range(0, 2**31)

# The connectors a file registers flytekit-style (`ConnectorRegistry.register(X())` at module
# level) while `headwater.tasks.loading` runs it; None outside a load.
_declared: ContextVar[list[TaskConnector] | None] = ContextVar("declared", default=None)


@contextmanager
def collecting_declared() -> Iterator[list[TaskConnector]]:
    """Collect the connectors that code run inside registers on the class, not on a registry."""
    found: list[TaskConnector] = []
    token = _declared.set(found)
    try:
        yield found
    finally:
        _declared.reset(token)


def _declare(connector: TaskConnector, override: bool = False) -> None:
    found = _declared.get()
    if found is None:
        raise InvalidConnectorError(
            f"ConnectorRegistry.register({connector!r}) was called on the class; Headwater keeps "
            "no global registry (fix: registry = ConnectorRegistry(); registry.register(...), "
            "or serve the file: `headwater serve-connectors --connectors FILE` registers every "
            "connector class in it)"
        )
    _check(connector)
    found.append(connector)


class _Register:
    """`registry.register(...)`; on the class itself, flytekit's module-level call (see above)."""

    def __get__(self, registry: ConnectorRegistry | None, owner: type) -> Callable[..., None]:
        if registry is None:
            return _declare
        return registry._register


class ConnectorRegistry:
    """The task connectors a service serves, keyed by (task type name, version).

    Several versions of one task type coexist. Registering a second connector for the same key
    is an error unless `override=True`.

    Example:
        registry = ConnectorRegistry()
        registry.register(QueryConnector())
        registry.get_connector("query", 0)
    """

    register = _Register()

    def __init__(self) -> None:
        self._connectors: dict[tuple[str, int], TaskConnector] = {}

    def _register(self, connector: TaskConnector, override: bool = False) -> None:
        """Serve `connector` for its (task_type_name, task_type_version).

        Raises:
            InvalidConnectorError: it is not a connector, or declares no usable task type.
            DuplicateConnectorError: another connector has the key and `override` is false.
        """
        _check(connector)
        key = connector.task_category
        existing = self._connectors.get(key)
        if existing is not None and not override:
            raise DuplicateConnectorError(
                f"duplicate connector for task type {key[0]!r} version {key[1]}: "
                f"{connector!r} and {existing!r} (fix: give one another task_type_version, "
                "or pass override=True to replace the first)"
            )
        self._connectors[key] = connector

    def get_connector(self, task_type_name: str, task_type_version: int = 0) -> TaskConnector:
        """The connector for a task type and version.

        Raises:
            ConnectorNotFoundError: none is registered; the message lists those that are.
        """
        connector = self._connectors.get((task_type_name, task_type_version))
        if connector is None:
            registered = [f"{name!r} v{version}" for name, version in self._connectors]
            raise ConnectorNotFoundError(task_type_name, task_type_version, registered)
        return connector

    def list_connectors(self) -> list[TaskConnector]:
        """Every registered connector, in registration order."""
        return list(self._connectors.values())

    def __len__(self) -> int:
        return len(self._connectors)

    def __iter__(self) -> Iterator[TaskConnector]:
        return iter(self.list_connectors())

    def __repr__(self) -> str:
        keys = ", ".join(f"{name}_v{version}" for name, version in self._connectors)
        return f"ConnectorRegistry([{keys}])"


def _check(connector: Any) -> None:
    if not isinstance(connector, AsyncConnector | SyncConnector):
        raise InvalidConnectorError(
            f"{connector!r} is not a task connector (fix: subclass headwater.tasks.AsyncConnector "
            "or SyncConnector)"
        )
    kind = type(connector).__name__
    name = getattr(connector, "task_type_name", None)
    if not isinstance(name, str) or not name:
        raise InvalidConnectorError(
            f"connector {kind} declares no task type (fix: set the class attribute "
            "task_type_name = '...', or pass task_type_name= to __init__)"
        )
    version = connector.task_type_version
    if not isinstance(version, int) or isinstance(version, bool) or version not in _INT32:
        raise InvalidConnectorError(
            f"connector {kind}'s task_type_version {version!r} is not an int from 0 to 2**31-1"
        )
    if isinstance(connector, AsyncConnector):
        meta = getattr(connector, "metadata_type", None)
        is_meta = isinstance(meta, type) and issubclass(meta, ResourceMeta)
        if not (is_meta and dataclasses.is_dataclass(meta)):
            raise InvalidConnectorError(
                f"connector {kind}'s metadata_type is {meta!r}, not a ResourceMeta dataclass "
                "(fix: @dataclass class JobMeta(ResourceMeta): job_id: str, then set "
                "metadata_type = JobMeta)"
            )

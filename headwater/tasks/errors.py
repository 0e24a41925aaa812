"""What can go wrong in task connectors, as Headwater errors the service maps to gRPC codes."""

from __future__ import annotations

from collections.abc import Iterable

from headwater.errors import HeadwaterError, NotFoundError


class ConnectorNotFoundError(NotFoundError):
    """No connector is registered for a task type and version (gRPC NOT_FOUND)."""

    def __init__(self, task_type_name: str, version: int, registered: Iterable[str]) -> None:
        known = ", ".join(registered) or "none"
        super().__init__(
            f"no connector for task type {task_type_name!r} version {version}; "
            f"registered: {known} (fix: register a connector whose task_type_name and "
            "task_type_version match the task's type)"
        )
        self.task_type_name = task_type_name
        self.version = version


class DuplicateConnectorError(HeadwaterError, ValueError):
    """A second connector for the same (task type, version); a ValueError, as in flytekit."""


class InvalidConnectorError(HeadwaterError, TypeError):
    """A connector object cannot be served: no task type, a wrong metadata_type, not a connector."""


class InvalidResourceMetaError(HeadwaterError, ValueError):
    """`resource_meta` bytes do not decode to the connector's metadata_type (INVALID_ARGUMENT)."""


class InvalidRequestError(HeadwaterError, ValueError):
    """A request breaks the protocol, such as a sync call without its header (INVALID_ARGUMENT)."""


class WrongConnectorKindError(HeadwaterError):
    """A sync connector asked to create a job, or an async one to run synchronously.

    gRPC FAILED_PRECONDITION: the client must use the other service for this task type.
    """


class UnsupportedOperationError(HeadwaterError):
    """The connector does not implement `get_metrics` or `get_logs` (gRPC UNIMPLEMENTED)."""


class ConnectorContractError(HeadwaterError):
    """Connector code returned something the protocol cannot carry (gRPC INTERNAL)."""


class OutputConversionError(ConnectorContractError):
    """An output value has no Flyte literal form."""


class TaskOutputError(HeadwaterError, ValueError):
    """A job's outputs cannot become a table to land (a run of a task component)."""


class TaskRunError(HeadwaterError):
    """A task component's run did not succeed; raised by `TaskRun.raise_for_status()`."""

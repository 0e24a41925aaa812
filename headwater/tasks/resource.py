"""What a task connector hands back: a job's phase, its `ResourceMeta` and its `Resource`."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any, Self, TypeVar

from google.protobuf import json_format, struct_pb2

from headwater.tasks.errors import ConnectorContractError, InvalidResourceMetaError
from headwater.tasks.idl import agent_pb2
from headwater.tasks.literals import fill_literal_map, to_python_map

_T = TypeVar("_T")


class TaskExecution(IntEnum):
    """A job's phase, with the names and numbers of flyteidl's `TaskExecution.Phase`.

    Example:
        Resource(phase=TaskExecution.SUCCEEDED, outputs={"rows": 3})
    """

    UNDEFINED = 0
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    ABORTED = 4
    FAILED = 5
    INITIALIZING = 6
    WAITING_FOR_RESOURCES = 7
    RETRYABLE_FAILED = 8

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change phase again (Flyte stops polling)."""
        return self in _TERMINAL

    @classmethod
    def from_state(cls, state: str) -> TaskExecution:
        """The phase for an external system's state word, as flytekit's `convert_to_flyte_phase`.

        Raises:
            ValueError: the word is not one of the known states.
        """
        phase = _STATES.get(state.lower())
        if phase is None:
            raise ValueError(f"unrecognized state {state!r}; known: {', '.join(sorted(_STATES))}")
        return phase


_TERMINAL = frozenset(
    {
        TaskExecution.SUCCEEDED,
        TaskExecution.ABORTED,
        TaskExecution.FAILED,
        TaskExecution.RETRYABLE_FAILED,
    }
)
_STATES = {
    **dict.fromkeys(
        ["failed", "timeout", "timedout", "canceled", "cancelled", "skipped"], TaskExecution.FAILED
    ),
    "internal_error": TaskExecution.RETRYABLE_FAILED,
    **dict.fromkeys(["done", "succeeded", "success", "completed"], TaskExecution.SUCCEEDED),
    **dict.fromkeys(["running", "terminating"], TaskExecution.RUNNING),
    "pending": TaskExecution.INITIALIZING,
}


@dataclass
class ResourceMeta:
    """What identifies a connector's job between calls: subclass as a dataclass of job-id fields.

    Flyte stores it as opaque bytes and sends it back on every `get` and `delete`, so keep it a
    few small fields (well under 1 KiB). It is encoded as JSON, byte-for-byte as flytekit does.

    Example:
        @dataclass
        class QueryMeta(ResourceMeta):
            query_id: str

        QueryMeta.decode(QueryMeta("q1").encode()) == QueryMeta("q1")
    """

    def encode(self) -> bytes:
        """The JSON bytes Flyte stores."""
        return json.dumps(asdict(self)).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """The metadata back from its bytes.

        Raises:
            InvalidResourceMetaError: the bytes are not this class's JSON.
        """
        try:
            fields = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidResourceMetaError(
                f"resource_meta is not JSON for {cls.__name__} ({exc}): {bytes(data[:80])!r}"
            ) from None
        return _from_dict(cls, fields)


def _from_dict(cls: type[_T], fields: Any) -> _T:
    if not isinstance(fields, dict):
        raise InvalidResourceMetaError(
            f"resource_meta for {cls.__name__} must be a JSON object, not {fields!r:.80}"
        )
    hints, names = _decoding(cls)  # type: ignore[arg-type]  # mypy: a type[_T] is Hashable
    unknown = set(fields) - names
    if unknown:
        raise InvalidResourceMetaError(
            f"resource_meta has fields {sorted(unknown)} that {cls.__name__} does not declare "
            f"(it has {sorted(names)})"
        )
    values = {name: _field_value(hints.get(name), value) for name, value in fields.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise InvalidResourceMetaError(
            f"resource_meta does not fit {cls.__name__}: {exc}"
        ) from None


@functools.cache
def _decoding(cls: type) -> tuple[Mapping[str, Any], frozenset[str]]:
    # Every GetTask and DeleteTask decodes, and evaluating string annotations each time was
    # most of GetTask's handler time (bench/RESULTS.md, issue 5). A class whose hints fail to
    # resolve raises and is not cached, so each decode raises the same error as before.
    hints = typing.get_type_hints(cls)
    return hints, frozenset(f.name for f in dataclasses.fields(cls))


def _field_value(hint: Any, value: Any) -> Any:
    # A nested dataclass (or an optional one) comes back as a dict; rebuild it.
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if (
            isinstance(option, type)
            and dataclasses.is_dataclass(option)
            and isinstance(value, dict)
        ):
            return _from_dict(option, value)
    return value


@dataclass
class Resource:
    """A job's state as `get` (or a sync connector's `do`) reports it.

    Args:
        phase: a `TaskExecution` phase (or its number).
        message: a line for the user, shown by Flyte next to the phase.
        log_links: flyteidl `TaskLog`s, links to the job's console or logs.
        outputs: a dict of Python values (converted to literals) or a flyteidl `LiteralMap`.
        custom_info: JSON-able details, shown as the task's custom info.

    Example:
        Resource(phase=TaskExecution.SUCCEEDED, message="3 rows", outputs={"rows": 3})
    """

    phase: TaskExecution
    message: str | None = None
    log_links: list[Any] | None = None
    outputs: dict[str, Any] | Any | None = None
    custom_info: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        try:
            self.phase = TaskExecution(self.phase)
        except ValueError:
            raise ConnectorContractError(
                f"Resource.phase {self.phase!r} is not a TaskExecution phase"
            ) from None

    def to_flyte_idl(self) -> Any:
        """The flyteidl `admin.Resource` message.

        Raises:
            ConnectorContractError: outputs or custom_info cannot be carried.
        """
        message = agent_pb2.Resource(
            phase=int(self.phase), message=self.message or "", log_links=self.log_links or []
        )
        if self.outputs is not None:
            fill_literal_map(message.outputs, self.outputs)
        if self.custom_info is not None:
            message.custom_info.CopyFrom(_struct(self.custom_info))
        return message

    @classmethod
    def from_flyte_idl(cls, message: Any) -> Resource:
        """A Resource from a flyteidl `admin.Resource`; outputs become Python values."""
        return cls(
            phase=TaskExecution(message.phase),
            message=message.message or None,
            log_links=list(message.log_links) or None,
            outputs=to_python_map(message.outputs) if message.HasField("outputs") else None,
            custom_info=(
                json_format.MessageToDict(message.custom_info)
                if message.HasField("custom_info")
                else None
            ),
        )


def _struct(info: dict[str, Any]) -> struct_pb2.Struct:
    try:
        text = json.dumps(info)
    except (TypeError, ValueError) as exc:
        raise ConnectorContractError(f"Resource.custom_info must be JSON-able: {exc}") from None
    return json_format.Parse(text, struct_pb2.Struct())

"""A write connector's target: the declaration parsed at the boundary, and the protocol the
files and PostgreSQL writers share (a custom Python `write()` is run differently: whole)."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pydantic

from headwater.client.models import FilesTarget, PostgresTarget, PythonWrite
from headwater.writes.errors import WriteError
from headwater.writes.plan import UpstreamPartition

TargetModel = FilesTarget | PostgresTarget | PythonWrite
KINDS: dict[str, type[TargetModel]] = {
    "files": FilesTarget,
    "postgres": PostgresTarget,
    "python": PythonWrite,
}

# The rows of the upstream's committed partition `name`, as of the run's start; None when the
# upstream has no such partition.
ReadPartition = Callable[[str], Iterable[pa.RecordBatch] | None]


def parse_target(component: str, target: Mapping[str, Any]) -> TargetModel:
    """The one target of a write declaration (`{"files": {...}}`, `{"postgres": {...}}` or
    `{"python": {...}}`), validated.

    Raises:
        WriteError: not exactly one known target, or its fields are invalid.
    """
    given = [k for k, v in target.items() if v is not None]
    unknown = [k for k in given if k not in KINDS]
    if unknown or len(given) != 1:
        raise WriteError(
            f"write connector '{component}': its target must be exactly one of "
            f"{', '.join(KINDS)}; got {', '.join(map(repr, given)) or 'none'}"
        )
    kind = given[0]
    try:
        return KINDS[kind].model_validate(target[kind])
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}" for e in exc.errors()
        )
        raise WriteError(
            f"write connector '{component}': its {kind} target is invalid: {problems}"
        ) from None


def target_kind(target: TargetModel) -> str:
    return next(k for k, cls in KINDS.items() if isinstance(target, cls))


def without_password(url: str) -> str:
    """A database URL as it may be shown and stored: its password removed."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def identity(input: str, target: TargetModel, connection_settings: Mapping[str, Any]) -> str:
    """What the write's marks are valid for: its input and where it writes, as a 16-character
    hash (the component's code version). Storage options and passwords are left out: new
    credentials for the same place do not make anything stale."""
    shape: dict[str, Any] = {"input": input, "kind": target_kind(target)}
    if isinstance(target, FilesTarget):
        shape.update(path=target.path, format=target.format)
    elif isinstance(target, PostgresTarget):
        url = target.url or str(connection_settings.get("url") or "")
        shape.update(
            table=target.table, mode=target.mode, key=target.key, url=without_password(url)
        )
    else:
        shape.update(code=target.code, output_directory=target.output_directory)
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Written:
    """One partition written: its rows, the bytes stored (0 where unknown) and where."""

    rows: int
    bytes: int
    place: str


class Target(Protocol):
    """Where a write connector puts its upstream's partitions, one at a time."""

    description: str  # for logs and errors, never with a secret in it

    def open(
        self, schema: pa.Schema, names: Sequence[str], marked: Mapping[str, str]
    ) -> dict[str, str]:
        """Get ready to write rows of `schema` for the upstream partitions `names`. Returns
        what the target holds (partition -> version): the catalog's `marked`, checked against
        the target or replaced by the target's own record of it."""
        ...

    def write(self, partition: UpstreamPartition, batches: Iterable[pa.RecordBatch]) -> Written:
        """Write one partition whole (replacing an earlier version of it), or raise."""
        ...

    def remove(self, partition: str) -> str:
        """Remove what the target holds of a partition removed upstream. Returns what was
        done, for the log."""
        ...

    def close(self) -> None: ...

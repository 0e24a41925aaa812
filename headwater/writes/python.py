"""A custom write: the component's code defines `write(...)`, called once per run with the
partitions that changed upstream, as Ascend's "Custom Write" is:
`write(filesystem, spark, data_provider, output_directory, **kwargs)`.

`write` declares the keyword arguments it wants, among `data_provider`, `filesystem`,
`output_directory`, `credentials` and `spark`; a `**kwargs` gets them all. A run is all or
nothing: the partitions count as written once `write` returns, and none do if it raises.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from headwater.client.models import PythonWrite
from headwater.connectors.loading import ConnectorSource
from headwater.engine.boundary import guard
from headwater.errors import ConnectorLoadError, Where
from headwater.store import Store
from headwater.writes.plan import UpstreamPartition

if TYPE_CHECKING:
    import pandas

ARGUMENTS = ("data_provider", "filesystem", "output_directory", "credentials", "spark")


@dataclass(frozen=True)
class WritePartition:
    """One upstream partition to write: its name, fingerprint and rows (read when asked)."""

    name: str
    fingerprint: str
    rows: int
    _store: Store
    _files: tuple[str, ...]
    _schema: pa.Schema

    def to_arrow(self) -> pa.Table:
        batches = list(self._store.read_batches(self._files, self._schema))
        return pa.Table.from_batches(batches, schema=self._schema)

    def to_pandas(self) -> pandas.DataFrame:
        frame: pandas.DataFrame = self.to_arrow().to_pandas()
        return frame


class DataProvider:
    """What a custom `write()` is given to write: the upstream partitions added or changed
    since the last successful write, and the names of those removed since.

    Example (in a write connector's code):
        >>> def write(data_provider, filesystem, output_directory):    # doctest: +SKIP
        ...     for p in data_provider.partitions():
        ...         with filesystem.open(f"{output_directory}/{p.name}.csv", "wb") as f:
        ...             p.to_pandas().to_csv(f, index=False)
    """

    def __init__(
        self,
        store: Store,
        schema: pa.Schema,
        partitions: Sequence[UpstreamPartition],
        removed: Sequence[str],
    ) -> None:
        self._schema = schema
        self._partitions = [
            WritePartition(p.name, p.fingerprint, p.rows, store, p.files, schema)
            for p in partitions
        ]
        self._removed = list(removed)

    def partitions(self) -> list[WritePartition]:
        """The partitions to write (added or changed upstream), by name."""
        return list(self._partitions)

    def removed(self) -> list[str]:
        """The names of the partitions removed upstream since the last write."""
        return list(self._removed)

    def schema(self) -> pa.Schema:
        """The upstream component's Arrow schema."""
        return self._schema

    def data(self) -> pa.Table:
        """The rows of every partition to write, as one Arrow table."""
        tables = [p.to_arrow() for p in self._partitions]
        return pa.concat_tables(tables) if tables else self._schema.empty_table()


def run_python_write(
    component: str,
    target: PythonWrite,
    provider: DataProvider,
    *,
    credential: str | None,
    run_id: int,
) -> None:
    """Load the component's code and call its `write()`.

    Raises:
        ConnectorLoadError: the code does not run, has no `write`, or `write` wants an
            argument Headwater does not pass.
        ConnectorError: `write()` raised (located at the component, function and run).
    """
    where = Where(component=component, function="write", run_id=run_id)
    with guard(where, credential):
        module = ConnectorSource.from_text(target.code, label=component).load()
    write = getattr(module, "write", None)
    if not callable(write):
        raise ConnectorLoadError(
            "the code defines no write() function",
            where,
            hint="define write(data_provider, filesystem, output_directory, **kwargs)",
        )
    if target.output_directory:
        with guard(where, credential):
            filesystem, root = fsspec.core.url_to_fs(target.output_directory)
            filesystem.makedirs(root, exist_ok=True)
    else:
        filesystem = LocalFileSystem()
    available = {
        "data_provider": provider,
        "filesystem": filesystem,
        "output_directory": target.output_directory,
        "credentials": credential,
        "spark": None,
    }
    arguments = _arguments(write, available, where)
    with guard(where, credential):
        write(**arguments)


def _arguments(
    function: Callable[..., Any], available: dict[str, Any], where: Where
) -> dict[str, Any]:
    """The keyword arguments `function` declares (all of them if it takes **kwargs)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(available)
    chosen: dict[str, Any] = {}
    for p in parameters:
        if p.kind is p.VAR_POSITIONAL:
            continue
        if p.name in available and p.kind is not p.POSITIONAL_ONLY:
            chosen[p.name] = available[p.name]
        elif p.default is p.empty:
            raise ConnectorLoadError(
                f"write() has a parameter '{p.name}' that Headwater cannot fill",
                where,
                hint=f"name parameters among {', '.join(ARGUMENTS)} (passed by keyword), or "
                "give the others defaults",
            )
    return chosen

"""Partitioned (pull) connectors: `context`, `list_objects`, one `read_*`, optional `infer_schema`.

The contract follows Ascend's custom Python read connector, so its code moves over unchanged:

    def context(credentials): ...                 # once per refresh; credentials is a str or None
    def list_objects(context, metadata): yield {"name": ..., "fingerprint": ..., "is_prefix": ...}
    def read_records(context, metadata): yield {"id": 1, ...}   # or another read_* below
"""

from __future__ import annotations

import importlib.util
import inspect
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from headwater.connectors.loading import ConnectorSource
from headwater.errors import ConnectorLoadError, Where

# read function -> (interface name, its parameters as the author writes them)
READ_FUNCTIONS: dict[str, tuple[str, str]] = {
    "read_bytes": ("bytes", "context, metadata"),
    "read_pandas_dataframe": ("pandas_dataframe", "context, metadata"),
    "read_arrow": ("arrow", "context, metadata"),
    "read_records": ("records", "context, metadata"),
    "read_spark_dataframe": ("spark_dataframe", "spark, context, metadata"),
}
OPTIONAL_FUNCTIONS = {
    "context": "credentials",
    "infer_schema": "context, metadata",
    "parser_function": "reader, on_next",
}


class ObjectMetadata(TypedDict):
    """What `list_objects` yields; extra keys are kept and handed back unchanged."""

    name: str
    fingerprint: str
    is_prefix: NotRequired[bool]


@dataclass(frozen=True)
class PartitionedConnector:
    """A loaded, checked partitioned connector: its functions and which read interface it uses."""

    source: ConnectorSource
    list_objects: Callable[[Any, Any], Iterator[Any]]
    read: Callable[..., Any]
    read_function: str  # e.g. "read_records"
    context: Callable[[str | None], Any] | None = None
    infer_schema: Callable[[Any, Any], Any] | None = None
    parser_function: Callable[[Any, Callable[[dict[str, Any]], None]], Any] | None = None

    @property
    def interface(self) -> str:
        return READ_FUNCTIONS[self.read_function][0]


def load_partitioned(source: ConnectorSource, component: str | None = None) -> PartitionedConnector:
    """Load and check a partitioned connector.

    Raises:
        ConnectorLoadError: naming the component and what to change, when a function is missing,
            doubled, has the wrong signature, or needs an extra that is not installed.

    Example:
        >>> code = '''
        ... def list_objects(context, metadata):
        ...     yield {"name": "a", "fingerprint": "1", "is_prefix": False}
        ... def read_records(context, metadata):
        ...     yield {"x": 1}
        ... '''
        >>> load_partitioned(ConnectorSource.from_text(code)).read_function
        'read_records'
    """
    where = Where(component=component)
    try:
        module = source.load()
    except ConnectorLoadError as exc:
        raise exc.located(where) from exc.__cause__
    return from_module(module, source, where)


def from_module(
    module: types.ModuleType, source: ConnectorSource, where: Where
) -> PartitionedConnector:
    found = {name: getattr(module, name) for name in READ_FUNCTIONS if hasattr(module, name)}
    if not hasattr(module, "list_objects"):
        raise ConnectorLoadError(
            f"{source.ref} defines no list_objects function",
            where,
            hint="add `def list_objects(context, metadata):` that yields "
            '{"name": ..., "fingerprint": ..., "is_prefix": False} for each object',
        )
    if not found:
        raise ConnectorLoadError(
            f"{source.ref} defines no read function",
            where,
            hint="add exactly one of: "
            + ", ".join(f"{n}({p})" for n, (_, p) in READ_FUNCTIONS.items()),
        )
    if len(found) > 1:
        raise ConnectorLoadError(
            f"{source.ref} defines {len(found)} read functions ({', '.join(found)}); "
            "Headwater would not know which one to call",
            where,
            hint="keep exactly one read function",
        )
    read_function, read = next(iter(found.items()))
    if read_function == "read_spark_dataframe":
        raise _spark_unavailable(where)
    optional = checked_functions(module, read_function, where)
    return PartitionedConnector(
        source=source,
        list_objects=module.list_objects,
        read=read,
        read_function=read_function,
        context=optional.get("context"),
        infer_schema=optional.get("infer_schema"),
        parser_function=optional.get("parser_function"),
    )


def checked_functions(
    module: types.ModuleType, read_function: str, where: Where, *, parser_at: Where | None = None
) -> dict[str, Callable[..., Any]]:
    """Check the signatures of `list_objects`, the read function and the optional functions
    the module defines (returned by name), and that `parser_function` goes with `read_bytes`
    (an error located at `parser_at`, else `where`).

    Raises:
        ConnectorLoadError: naming the function and the signature it needs.
    """
    _check_signature(module, "list_objects", "context, metadata", where)
    _check_signature(module, read_function, READ_FUNCTIONS[read_function][1], where)
    optional = {}
    for name, params in OPTIONAL_FUNCTIONS.items():
        if hasattr(module, name):
            _check_signature(module, name, params, where)
            optional[name] = getattr(module, name)
    if "parser_function" in optional and read_function != "read_bytes":
        raise ConnectorLoadError(
            f"parser_function is only used with read_bytes, but the connector uses {read_function}",
            parser_at or where,
            hint="remove parser_function, or read with read_bytes",
        )
    return optional


def _check_signature(module: types.ModuleType, name: str, params: str, where: Where) -> None:
    fn = getattr(module, name)
    expected = f"def {name}({params})"
    if not callable(fn):
        raise ConnectorLoadError(
            f"{name} is a {type(fn).__name__}, not a function",
            where.at(function=name),
            hint=f"define it as `{expected}:`",
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to check
    try:
        signature.bind(*([None] * len(params.split(", "))))
    except TypeError:
        raise ConnectorLoadError(
            f"{name}{signature} cannot be called as {name}({params})",
            where.at(function=name),
            hint=f"define it as `{expected}:`",
        ) from None


def _spark_unavailable(where: Where) -> ConnectorLoadError:
    where = where.at(function="read_spark_dataframe")
    if importlib.util.find_spec("pyspark") is None:
        return ConnectorLoadError(
            "read_spark_dataframe(spark, context, metadata) needs pyspark, which is not installed",
            where,
            hint="install the Spark extra: pip install 'headwater[spark]', or read with "
            "read_arrow, read_pandas_dataframe, read_records or read_bytes",
        )
    return ConnectorLoadError(
        "read_spark_dataframe(spark, context, metadata) returns a Spark DataFrame, so it runs "
        "on the Spark executor only",
        where,
        hint="run it with --executor spark (see docs/spark.md), or read with read_arrow, "
        "read_pandas_dataframe, read_records or read_bytes",
    )

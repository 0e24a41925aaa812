"""Loading task connectors from `.py` files or importable modules into a registry.

Every connector class a file or module defines (a subclass of AsyncConnector or SyncConnector,
not one imported from elsewhere, and not a base of another such class) is instantiated with no
arguments and registered. A file written for flytekit that ends in
`ConnectorRegistry.register(MyConnector(...))` keeps working: that instance is used instead.
"""

from __future__ import annotations

import inspect
import traceback
import types
from collections.abc import Iterable
from pathlib import Path

from headwater.connectors.loading import ConnectorSource
from headwater.errors import ConnectorLoadError, Where
from headwater.tasks.connector import AsyncConnector, SyncConnector, TaskConnector
from headwater.tasks.registry import ConnectorRegistry, collecting_declared

_BASES = (AsyncConnector, SyncConnector)


def load_connectors(
    refs: Iterable[str | Path], registry: ConnectorRegistry | None = None
) -> ConnectorRegistry:
    """Register every connector class defined in the given files or modules.

    Args:
        refs: paths to `.py` files, or module names importable from `sys.path`.
        registry: the registry to add to; a new one by default.

    Returns:
        The registry.

    Raises:
        ConnectorLoadError: a file is missing, raises on import (the message quotes the failing
            line), defines no connector, or a connector class needs constructor arguments.
        DuplicateConnectorError: two connectors serve the same task type and version.

    Example:
        registry = load_connectors(["connectors/postgres_query.py", "mypkg.connectors"])
    """
    registry = registry if registry is not None else ConnectorRegistry()
    for ref in refs:
        for connector in _connectors_in(str(ref)):
            registry.register(connector)
    return registry


def _connectors_in(ref: str) -> list[TaskConnector]:
    with collecting_declared() as declared:
        try:
            source = ConnectorSource.resolve(ref)
            module = source.load()
        except ConnectorLoadError as exc:
            raise _with_user_line(exc, ref) from exc.__cause__
    classes = _connector_classes(module)
    if not classes and not declared:
        raise ConnectorLoadError(
            f"{ref} defines no task connector",
            hint="define a subclass of headwater.tasks.AsyncConnector or SyncConnector there",
        )
    made = {type(connector) for connector in declared}
    return list(declared) + [_instantiate(cls, ref) for cls in classes if cls not in made]


def _connector_classes(module: types.ModuleType) -> list[type[TaskConnector]]:
    defined = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, _BASES)
        and value not in _BASES
        and value.__module__ == module.__name__
    ]
    # A class another connector here builds on is a base, not a connector to serve.
    bases = {base for cls in defined for base in cls.__mro__[1:]}
    return [cls for cls in defined if cls not in bases]


def _instantiate(cls: type[TaskConnector], ref: str) -> TaskConnector:
    where = Where(component=cls.__name__, function="__init__")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ConnectorLoadError(
            f"connector class {cls.__name__} in {ref} does not implement {missing}",
            where,
            hint="define those methods (plain def or async def)",
        )
    try:
        inspect.signature(cls).bind()
    except TypeError:
        params = ", ".join(
            name
            for name, param in inspect.signature(cls).parameters.items()
            if param.default is inspect.Parameter.empty
            and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        )
        raise ConnectorLoadError(
            f"connector class {cls.__name__} in {ref} needs constructor arguments ({params})",
            where,
            hint="give them defaults, or register an instance in the file: "
            f"ConnectorRegistry.register({cls.__name__}(...))",
        ) from None
    try:
        return cls()
    except Exception as exc:
        line = _user_line(exc)
        raise ConnectorLoadError(
            f"{cls.__name__}() in {ref} raised {type(exc).__name__}: {exc}"
            + (f" at {line}" if line else ""),
            where,
            hint="the error is in the connector's __init__",
        ) from exc


def _with_user_line(exc: ConnectorLoadError, ref: str) -> ConnectorLoadError:
    path = Path(ref)
    prefer = str(path.absolute()) if path.suffix == ".py" or path.exists() else None
    line = _user_line(exc.__cause__, prefer) if exc.__cause__ is not None else None
    if line is None:
        return exc
    return ConnectorLoadError(f"{exc.message} at {line}", exc.where, hint=exc.hint)


def _user_line(exc: BaseException, prefer: str | None = None) -> str | None:
    """`file, line N: code` for the innermost frame in `prefer` (the connector file), else the
    innermost frame that is neither Headwater's nor importlib's."""
    here = str(Path(__file__).parents[1])
    frames = list(reversed(traceback.extract_tb(exc.__traceback__)))
    ours = [frame for frame in frames if frame.filename == prefer]
    theirs = [
        frame
        for frame in frames
        if not frame.filename.startswith("<frozen") and not frame.filename.startswith(here)
    ]
    for frame in ours[:1] or theirs[:1]:
        code = f": {frame.line.strip()}" if frame.line else ""
        return f"{frame.filename}, line {frame.lineno}{code}"
    return None

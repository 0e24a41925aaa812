"""Python transforms: `transform(...)` defined in source text, called with one table per input."""

from __future__ import annotations

import inspect
import linecache
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from headwater.connectors.loading import ConnectorSource
from headwater.engine.boundary import guard
from headwater.errors import ConnectorError, ConnectorLoadError, Where

ACCEPTED = "a pyarrow Table, a pyarrow RecordBatch or a pandas DataFrame"
_PANDAS_NAMES = {"pd.DataFrame", "pandas.DataFrame"}


@dataclass(frozen=True)
class PythonTransform:
    """A loaded `transform` function, and which of its inputs it wants as pandas DataFrames."""

    function: Callable[..., Any]
    pandas: tuple[bool, ...]  # per input, in order

    def __call__(self, tables: Sequence[pa.Table], where: Where) -> pa.Table:
        """The function's result, as Arrow, for `tables` (one per input, in order).

        Raises:
            ConnectorError: the function raised, or returned something other than a table.
        """
        with guard(where):
            arguments = [
                t.to_pandas() if p else t for t, p in zip(tables, self.pandas, strict=True)
            ]
            result = self.function(*arguments)
            return _as_table(result, where)


def load(text: str, component: str, names: Sequence[str]) -> PythonTransform:
    """Run the source text of a Python transform and take its `transform` function.

    Raises:
        ConnectorLoadError: the code does not run, or defines no `transform` that takes one
            argument per input.
    """
    where = Where(component=component, function="transform")
    with guard(Where(component=component)):
        module = ConnectorSource.from_text(text, label=component).load()
    function = getattr(module, "transform", None)
    if not callable(function):
        found = "is not callable" if function is not None else "is not defined"
        raise ConnectorLoadError(
            f"the code of transform '{component}' must define a function `transform`; it {found}",
            where,
            hint=f"define `def transform({', '.join(names)}):` returning {ACCEPTED}",
        )
    code = getattr(function, "__code__", None)
    if code is not None:  # tracebacks then quote the failing line of the transform's code
        lines = text.splitlines(keepends=True)
        linecache.cache[code.co_filename] = (len(text), None, lines, code.co_filename)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a callable without a signature (a builtin): Arrow it is
        return PythonTransform(function, (False,) * len(names))
    try:
        signature.bind(*names)
    except TypeError as exc:
        raise ConnectorLoadError(
            f"transform{signature} cannot be called with its {len(names)} input(s) "
            f"({', '.join(names)}), one positional argument each: {exc}",
            where,
            hint=f"declare `def transform({', '.join(names)}):`, in the inputs' order",
        ) from None
    bound = list(signature.parameters.values())
    wants = tuple(
        i < len(bound)
        and bound[i].kind != inspect.Parameter.VAR_POSITIONAL
        and _is_pandas_frame(bound[i].annotation, module.__dict__)
        for i in range(len(names))
    )
    return PythonTransform(function, wants)


def _is_pandas_frame(annotation: Any, namespace: dict[str, Any]) -> bool:
    """Whether a parameter's annotation is pandas' DataFrame. Annotations are often strings
    (postponed evaluation), so a string is evaluated in the transform's own module, as
    `typing.get_type_hints` would; when that fails (pandas imported only under TYPE_CHECKING),
    the usual spellings count."""
    for _ in range(2):  # a quoted annotation under postponed evaluation is a string twice
        if not isinstance(annotation, str):
            break
        try:
            annotation = eval(annotation, namespace)  # the module's own code; it already ran
        except Exception:
            return annotation.strip().strip("'\"") in _PANDAS_NAMES
    return (
        isinstance(annotation, type)
        and annotation.__name__ == "DataFrame"
        and annotation.__module__.split(".")[0] == "pandas"
    )


def _as_table(result: Any, where: Where) -> pa.Table:
    if isinstance(result, pa.RecordBatch):
        result = pa.Table.from_batches([result])
    if isinstance(result, pa.Table):
        return result.replace_schema_metadata(None)
    import pandas  # (only now: most transforms never need it, and it is slow to import)

    if isinstance(result, pandas.DataFrame):
        # A named index holds data (a groupby's keys): keep it as columns; a plain row
        # number index does not.
        if all(name is not None for name in result.index.names):
            result = result.reset_index()
        try:
            table = pa.Table.from_pandas(result, preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise ConnectorError(
                f"transform() returned a pandas DataFrame that Arrow cannot store: {exc}",
                where,
                hint="give each column one type (e.g. no mixed numbers and text in a column)",
            ) from None
        return table.replace_schema_metadata(None)
    returned = "None" if result is None else f"a {type(result).__module__}.{type(result).__name__}"
    raise ConnectorError(
        f"transform() returned {returned}; it must return {ACCEPTED}",
        where,
        hint="return the result table"
        + (" (is a `return` statement missing?)" if result is None else ""),
    )

"""A job's outputs as the Arrow table a task run lands.

| outputs (or the named output)        | table                           |
|--------------------------------------|---------------------------------|
| a list of dicts                      | one row per dict                |
| a dict of equal-length lists         | one column per key              |
| a dict of scalars                    | one row                         |
| a pyarrow Table or RecordBatch       | as is                           |
| a pandas DataFrame                   | its columns (not its index)     |

Flyte literals (a `LiteralMap`, a `Literal`) are read as Python values first.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from headwater.tasks.errors import TaskOutputError
from headwater.tasks.idl import literals_pb2
from headwater.tasks.literals import to_python, to_python_map

ACCEPTED = (
    "a list of dicts (rows), a dict of equal-length lists (columns), a dict of scalars "
    "(one row), a pyarrow Table or a pandas DataFrame"
)


def outputs_table(outputs: Any, output: str | None = None) -> pa.Table | None:
    """The table to land from a job's `Resource.outputs`; None when the job has no outputs.

    Args:
        outputs: `Resource.outputs`.
        output: the name of the one output to land; None lands the outputs dict itself.

    Raises:
        TaskOutputError: the output is missing or has no table form; the message names it and
            the shapes that work.
    """
    if isinstance(outputs, literals_pb2.LiteralMap):
        outputs = to_python_map(outputs)
    if outputs is None:
        return None
    if output is None:
        return to_table(outputs, "the outputs")
    if not isinstance(outputs, Mapping) or output not in outputs:
        names = sorted(map(str, outputs)) if isinstance(outputs, Mapping) else []
        raise TaskOutputError(
            f"the job has no output named {output!r} (its outputs: "
            f"{', '.join(names) or type(outputs).__name__}); name one of those, or none to "
            "land the outputs dict itself"
        )
    return to_table(outputs[output], f"output {output!r}")


def to_table(value: Any, label: str = "the value") -> pa.Table:
    """`value` as an Arrow table (see the module's table); `label` names it in errors."""
    if isinstance(value, literals_pb2.Literal):
        value = to_python(value)
    try:
        return _table(value, label)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise TaskOutputError(f"{label} cannot become Arrow columns: {exc}") from None


def _table(value: Any, label: str) -> pa.Table:
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    pandas = sys.modules.get("pandas")  # not imported means the value is no DataFrame
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return pa.Table.from_pandas(value, preserve_index=False)
    if isinstance(value, list | tuple):
        bad = next((i for i, row in enumerate(value) if not isinstance(row, Mapping)), None)
        if bad is not None:
            raise _shape_error(label, f"a list whose item {bad} is a {type(value[bad]).__name__}")
        return pa.Table.from_pylist([_str_keys(row) for row in value])
    if isinstance(value, Mapping):
        columns = {k: v for k, v in _str_keys(value).items() if isinstance(v, list | tuple)}
        if not columns:
            return pa.Table.from_pylist([_str_keys(value)])
        if len(columns) != len(value):
            scalars = sorted(set(map(str, value)) - set(columns))
            raise _shape_error(
                label, f"a dict mixing lists ({', '.join(sorted(columns))}) and scalars "
                f"({', '.join(scalars)})",
            )  # fmt: skip
        lengths = {name: len(items) for name, items in columns.items()}
        if len(set(lengths.values())) > 1:
            raise _shape_error(label, f"a dict of lists of different lengths {lengths}")
        return pa.Table.from_pydict({name: list(items) for name, items in columns.items()})
    raise _shape_error(label, f"a {type(value).__name__}")


def _str_keys(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(key): item for key, item in row.items()}


def _shape_error(label: str, found: str) -> TaskOutputError:
    return TaskOutputError(f"{label} is {found}; a task lands {ACCEPTED}")

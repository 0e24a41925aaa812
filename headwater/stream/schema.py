"""Stream schemas, declared as classes (Pathway's way):

class InputSchema(Schema):
    key: int = column_definition(primary_key=True)
    genus: str
    epithet: str = "unknown"        # a default
    note: str | None                # optional: nullable, None when not given
"""

from __future__ import annotations

import datetime
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from headwater.errors import HeadwaterError

_MISSING: Any = object()

# Python annotation -> (Arrow type, accepted Python types). JSON columns hold any JSON value
# and are stored as its text.
_TYPES: dict[Any, tuple[pa.DataType, tuple[type, ...]]] = {
    int: (pa.int64(), (int,)),
    float: (pa.float64(), (float, int)),
    str: (pa.string(), (str,)),
    bool: (pa.bool_(), (bool,)),
    bytes: (pa.binary(), (bytes, bytearray)),
    datetime.datetime: (pa.timestamp("us"), (datetime.datetime,)),
    datetime.date: (pa.date32(), (datetime.date,)),
    dict: (pa.string(), (dict, list, str, int, float, bool)),
    list: (pa.string(), (dict, list, str, int, float, bool)),
    Any: (pa.string(), (dict, list, str, int, float, bool)),
}


class SchemaDefinitionError(HeadwaterError, TypeError):
    """A schema class declares something a stream cannot hold."""


@dataclass(frozen=True)
class ColumnDefinition:
    """What `column_definition(...)` declares about a column."""

    primary_key: bool = False
    default_value: Any = _MISSING


def column_definition(*, primary_key: bool = False, default_value: Any = _MISSING) -> Any:
    """Declare a column's properties in a Schema class.

    Example:
        >>> class S(Schema):
        ...     key: int = column_definition(primary_key=True)
        ...     name: str = column_definition(default_value="anonymous")
    """
    return ColumnDefinition(primary_key=primary_key, default_value=default_value)


@dataclass(frozen=True)
class Column:
    name: str
    python_type: Any
    arrow_type: pa.DataType
    accepts: tuple[type, ...]
    nullable: bool
    primary_key: bool
    default: Any  # _MISSING when there is none

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    @property
    def is_json(self) -> bool:
        return self.python_type in (dict, list, Any)

    @property
    def type_name(self) -> str:
        name = getattr(self.python_type, "__name__", str(self.python_type))
        return f"{name} | None" if self.nullable else name


class Schema:
    """Base class of stream schemas: annotate columns; optional ones are `X | None`."""

    __columns__: ClassVar[tuple[Column, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hints = typing.get_type_hints(cls)
        columns = []
        for name, hint in hints.items():
            if name.startswith("__"):
                continue
            columns.append(_column(cls, name, hint))
        if not columns:
            raise SchemaDefinitionError(f"schema {cls.__name__} declares no columns")
        cls.__columns__ = tuple(columns)

    @classmethod
    def columns(cls) -> tuple[Column, ...]:
        return cls.__columns__

    @classmethod
    def primary_key(cls) -> tuple[str, ...]:
        return tuple(c.name for c in cls.__columns__ if c.primary_key)

    @classmethod
    def arrow_schema(cls) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in cls.__columns__]
        )


def _column(cls: type, name: str, hint: Any) -> Column:
    nullable = False
    base = hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise SchemaDefinitionError(
                f"{cls.__name__}.{name}: {hint} mixes types; a column has one type "
                "(optionally `| None`)"
            )
        base = args[0]
    base = typing.get_origin(base) or base  # dict[str, int] -> dict
    if base not in _TYPES:
        known = ", ".join(sorted(getattr(t, "__name__", str(t)) for t in _TYPES))
        raise SchemaDefinitionError(
            f"{cls.__name__}.{name}: type {hint} is not supported; use one of {known}"
        )
    arrow_type, accepts = _TYPES[base]
    declared = cls.__dict__.get(name, _MISSING)
    definition = (
        declared
        if isinstance(declared, ColumnDefinition)
        else ColumnDefinition(default_value=declared)
    )
    default = definition.default_value
    if default is _MISSING and nullable:
        default = None
    if definition.primary_key and nullable:
        raise SchemaDefinitionError(f"{cls.__name__}.{name}: a primary key cannot be optional")
    column = Column(name, base, arrow_type, accepts, nullable, definition.primary_key, default)
    if column.has_default and not _fits(column, default):
        raise SchemaDefinitionError(
            f"{cls.__name__}.{name}: the default {default!r} is not a {column.type_name}"
        )
    return column


def _fits(column: Column, value: Any) -> bool:
    if value is None:
        return column.nullable
    if column.is_json:
        try:
            json_text(value)
        except (TypeError, ValueError):
            return False
        return True
    if isinstance(value, bool) and column.python_type is not bool:
        return False
    return isinstance(value, column.accepts)


def schema_from_columns(name: str, annotations: dict[str, Any]) -> type[Schema]:
    """A Schema class built from {column: type} (for streams declared without a class)."""
    return types.new_class(
        name, (Schema,), exec_body=lambda ns: ns.update({"__annotations__": dict(annotations)})
    )


def json_text(value: Any) -> str:
    """A JSON column's value as stored: its JSON text, keys sorted (so an equal value is equal
    text, and an identical re-send is recognised)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)

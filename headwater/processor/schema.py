"""The output schema a processor statement must match: column name -> type, `?` for nullable.

The schema is mandatory (the seed product's rule): every returned row must have exactly these
columns, with values of these types. It is parsed once, at the boundary, from a plain mapping
such as `{"id": "int", "note": "string?"}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from headwater.processor.errors import ProcessorConfigError

ColumnType = Literal["int", "float", "bool", "string", "json"]
COLUMN_TYPES: tuple[ColumnType, ...] = ("int", "float", "bool", "string", "json")


@dataclass(frozen=True)
class Column:
    """One output column: its name, type, and whether it may hold null (None)."""

    name: str
    type: ColumnType
    nullable: bool = False

    @property
    def spec(self) -> str:
        """The column's type as written in a schema mapping, e.g. "string?"."""
        return f"{self.type}?" if self.nullable else self.type


@dataclass(frozen=True)
class OutputSchema:
    """The columns every row a statement returns must have, in declaration order.

    Example:
        schema = OutputSchema.parse({"id": "int", "name": "string?"})
        schema["name"].nullable  # True
    """

    columns: tuple[Column, ...]

    def __post_init__(self) -> None:
        if not self.columns:
            raise ProcessorConfigError(
                "the output schema declares no columns; it is mandatory: map each output "
                'column to its type, e.g. {"id": "int", "name": "string?"}'
            )
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ProcessorConfigError(f"the output schema repeats a column name: {names}")

    @classmethod
    def parse(cls, mapping: Mapping[str, str] | OutputSchema) -> OutputSchema:
        """Read a schema from `{column: type}`; types are int, float, bool, string, json.

        Raises:
            ProcessorConfigError: a column name is not a non-empty string, or a type is unknown.
        """
        if isinstance(mapping, OutputSchema):
            return mapping
        if not isinstance(mapping, Mapping):
            raise ProcessorConfigError(
                f"the output schema must map column names to types, got {type(mapping).__name__}"
                ' (e.g. {"id": "int", "name": "string?"})'
            )
        return cls(tuple(_parse_column(name, spec) for name, spec in mapping.items()))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def __getitem__(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def to_mapping(self) -> dict[str, str]:
        """The schema as the plain mapping it was parsed from."""
        return {c.name: c.spec for c in self.columns}


def _parse_column(name: object, spec: object) -> Column:
    if not isinstance(name, str) or not name:
        raise ProcessorConfigError(
            f"output schema column names must be non-empty strings, got {name!r}"
        )
    if not isinstance(spec, str):
        raise ProcessorConfigError(
            f"output schema column '{name}': the type must be a string such as 'int' or "
            f"'string?', got {spec!r}"
        )
    text = spec.strip()
    nullable = text.endswith("?")
    base = text[:-1].strip() if nullable else text
    if base not in COLUMN_TYPES:
        raise ProcessorConfigError(
            f"output schema column '{name}': unknown type {spec!r}; use one of "
            f"{', '.join(COLUMN_TYPES)}, with a trailing '?' for a nullable column (e.g. 'int?')"
        )
    return Column(name, base, nullable)

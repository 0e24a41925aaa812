"""Plain Python values to Flyte literals and back: how task inputs and outputs cross the wire.

| Python                          | Flyte literal                                   |
|---------------------------------|-------------------------------------------------|
| `None`                          | `Scalar.none_type`                              |
| `bool`, `int`, `float`, `str`   | `Primitive.boolean / integer / float_value / string_value` |
| `datetime` (naive means UTC)    | `Primitive.datetime`                            |
| `timedelta`                     | `Primitive.duration`                            |
| `list`, `tuple`                 | `LiteralCollection`, item by item               |
| `dict` with `str` keys          | `Scalar.generic`, a JSON `Struct` (flytekit's untyped dict) |
| a `Literal`                     | itself                                          |

Reading goes the other way; a literal with no plain form (a blob, a structured dataset) stays a
`Literal`. A `Struct` holds JSON numbers, so integers inside a dict come back as floats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from headwater.tasks.errors import OutputConversionError
from headwater.tasks.idl import literals_pb2

# Compared, not `in range(...)`: for an int subclass (an IntEnum) that scans the whole range.
_INT64 = (-(2**63), 2**63 - 1)
# The exact types (not subclasses, such as an IntEnum) that `fill_literal_map` sets in place.
_PRIMITIVE_FIELDS = {bool: "boolean", int: "integer", float: "float_value", str: "string_value"}


def to_literal_map(values: Mapping[str, Any] | Any) -> Any:
    """A `LiteralMap` for `values`: a dict of Python values or literals, or a `LiteralMap` as is.

    Raises:
        OutputConversionError: a value has no literal form; the message names its key.
    """
    if isinstance(values, literals_pb2.LiteralMap):
        return values
    if not isinstance(values, Mapping):
        raise OutputConversionError(
            f"outputs must be a dict of values or a LiteralMap, not {type(values).__name__}"
        )
    return literals_pb2.LiteralMap(
        literals={str(name): to_literal(value, str(name)) for name, value in values.items()}
    )


def fill_literal_map(target: Any, values: Mapping[str, Any] | Any) -> None:
    """Fill the empty `LiteralMap` message `target` with `to_literal_map(values)`, byte for byte.

    Raises:
        OutputConversionError: as `to_literal_map`.
    """
    # Plain values are set in place: building each Literal and then copying it into the map
    # took two thirds of a GetTask's `Resource.to_flyte_idl`. With str keys, no two collide.
    if not (isinstance(values, dict) and all(type(name) is str for name in values)):
        target.CopyFrom(to_literal_map(values))
        return
    for name, value in values.items():
        field = _PRIMITIVE_FIELDS.get(type(value))
        if field is None or (field == "integer" and not _INT64[0] <= value <= _INT64[1]):
            target.literals[name].CopyFrom(to_literal(value, name))
        else:
            setattr(target.literals[name].scalar.primitive, field, value)


def to_literal(value: Any, path: str = "value") -> Any:
    """The Flyte `Literal` for one Python value; `path` names it in errors."""
    if isinstance(value, literals_pb2.Literal):
        return value
    if isinstance(value, list | tuple):
        items = [to_literal(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return literals_pb2.Literal(collection=literals_pb2.LiteralCollection(literals=items))
    if isinstance(value, dict):
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(generic=_struct(value, path)))
    if value is None:
        return literals_pb2.Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=_primitive(value, path)))


def _primitive(value: Any, path: str) -> Any:
    # bool before int: True is an int too.
    if isinstance(value, bool):
        return literals_pb2.Primitive(boolean=value)
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise OutputConversionError(
                f"output {path} = {value} does not fit a Flyte integer (64-bit); "
                "return it as a str or a float"
            )
        return literals_pb2.Primitive(integer=value)
    if isinstance(value, float):
        return literals_pb2.Primitive(float_value=value)
    if isinstance(value, str):
        return literals_pb2.Primitive(string_value=value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(moment.astimezone(UTC))
        return literals_pb2.Primitive(datetime=stamp)
    if isinstance(value, timedelta):
        duration = duration_pb2.Duration()
        duration.FromTimedelta(value)
        return literals_pb2.Primitive(duration=duration)
    raise OutputConversionError(
        f"output {path} is a {type(value).__name__}, which has no Flyte literal form; "
        "return None, bool, int, float, str, datetime, timedelta, a list or a dict of those, "
        "or build the flyteidl Literal yourself"
    )


def _struct(value: dict[Any, Any], path: str) -> struct_pb2.Struct:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise OutputConversionError(
            f"output {path} is a dict that is not JSON ({exc}); a dict becomes a JSON Struct, "
            "so keep its keys str and its values JSON types"
        ) from None
    return json_format.Parse(text, struct_pb2.Struct())


def to_python_map(literal_map: Any) -> dict[str, Any]:
    """The Python values of a `LiteralMap` (the inputs a connector's `create` receives)."""
    return {name: to_python(literal) for name, literal in literal_map.literals.items()}


def to_python(literal: Any) -> Any:
    """The Python value of a `Literal`, or the literal itself if it has no plain form."""
    kind = literal.WhichOneof("value")
    if kind == "collection":
        return [to_python(item) for item in literal.collection.literals]
    if kind == "map":
        return to_python_map(literal.map)
    if kind != "scalar":
        return literal
    scalar = literal.scalar
    part = scalar.WhichOneof("value")
    if part == "none_type":
        return None
    if part == "generic":
        return json_format.MessageToDict(scalar.generic)
    if part == "union":
        return to_python(scalar.union.value)
    if part == "primitive":
        return _primitive_value(scalar.primitive)
    return literal


def _primitive_value(primitive: Any) -> Any:
    kind = primitive.WhichOneof("value")
    if kind == "datetime":
        return primitive.datetime.ToDatetime(tzinfo=UTC)
    if kind == "duration":
        return primitive.duration.ToTimedelta()
    if kind is None:
        return None
    return getattr(primitive, kind)

"""Listing: call `list_objects` from the root down through every prefix; check what it yields."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from headwater.connectors.partitioned import PartitionedConnector
from headwater.engine.boundary import guard
from headwater.errors import ConnectorError, Where

MAX_DEPTH = 256
OBJECT_SHAPE = '{"name": "...", "fingerprint": "...", "is_prefix": False}'


@dataclass(frozen=True)
class ListedObject:
    """A non-prefix object: it becomes a partition. `metadata` is the dict exactly as yielded."""

    name: str
    fingerprint: str
    metadata: dict[str, Any]


def list_all(
    connector: PartitionedConnector, context: Any, where: Where, secret: str | None = None
) -> list[ListedObject]:
    """Every object below the root, in listing order.

    Raises:
        ConnectorError: naming the prefix and item, for anything `list_objects` gets wrong.
    """
    where = where.at(function="list_objects")
    objects: list[ListedObject] = []
    seen: dict[str, str | None] = {}  # name -> the prefix it was listed under (None: the root)
    # Depth-first, with the chain of prefix names above each one, to name cycles.
    pending: list[tuple[dict[str, Any] | None, tuple[str, ...]]] = [(None, ())]
    while pending:
        metadata, chain = pending.pop()
        parent = chain[-1] if chain else None
        children: list[tuple[dict[str, Any], tuple[str, ...]]] = []
        with guard(where, secret):
            for index, obj in enumerate(_call(connector, context, metadata, parent)):
                name, fingerprint, is_prefix = _check(obj, index, parent)
                if is_prefix and name in chain:
                    cycle = " -> ".join((*chain[chain.index(name) :], name))
                    raise ConnectorError(
                        f"prefix '{name}' lists itself again (cycle: {cycle})",
                        hint="a prefix's children need names of their own",
                    )
                if name in seen:
                    places = (
                        _under(parent)
                        if seen[name] == parent
                        else f"({_under(seen[name])} and {_under(parent)})"
                    )
                    raise ConnectorError(
                        f"name '{name}' was listed twice {places}; "
                        "names must be unique within one listing",
                        hint="make names unique, for example by including the prefix path",
                    )
                seen[name] = parent
                if is_prefix:
                    if len(chain) >= MAX_DEPTH:
                        raise ConnectorError(
                            f"prefixes nest deeper than {MAX_DEPTH} levels under '{name}'",
                            hint="check that list_objects stops yielding prefixes",
                        )
                    children.append((obj, (*chain, name)))
                else:
                    objects.append(ListedObject(name, fingerprint, obj))
        pending.extend(reversed(children))  # keep the author's order
    return objects


def _call(
    connector: PartitionedConnector, context: Any, metadata: Any, parent: str | None
) -> Iterator[Any]:
    result = connector.list_objects(context, metadata)
    if not isinstance(result, Iterator):
        raise ConnectorError(
            f"returned a {type(result).__name__} {_under(parent)}, not a generator",
            hint=f"yield each object: `yield {OBJECT_SHAPE}`",
        )
    return result


def _check(obj: Any, index: int, parent: str | None) -> tuple[str, str, bool]:
    item = f"item {index} {_under(parent)}"
    if not isinstance(obj, dict):
        raise ConnectorError(
            f"{item} is a {type(obj).__name__}, not a dict", hint=f"yield {OBJECT_SHAPE}"
        )
    is_prefix = obj.get("is_prefix", False)
    if not isinstance(is_prefix, bool):
        named = obj.get("name")
        label = f"object '{named}' ({item})" if isinstance(named, str) and named else item
        raise ConnectorError(
            f"{label} has is_prefix={is_prefix!r}; it must be True or False",
            hint="use a bool: True for a prefix to list again, False for an object to read",
        )
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ConnectorError(
            f"{item} has {_describe(obj, 'name')}; it needs a non-empty string name",
            hint=f"yield {OBJECT_SHAPE}",
        )
    fingerprint = obj.get("fingerprint")
    if is_prefix and fingerprint is None:
        fingerprint = ""  # a prefix is listed, never read: it needs no fingerprint
    if not isinstance(fingerprint, str) or (not fingerprint and not is_prefix):
        raise ConnectorError(
            f"object '{name}' ({item}) has {_describe(obj, 'fingerprint')}; "
            "it needs a non-empty string fingerprint",
            hint="use anything that changes when the object does, as a string: "
            "str(mtime), an ETag, a content hash",
        )
    return name, fingerprint, is_prefix


def _under(parent: str | None) -> str:
    return f"under prefix '{parent}'" if parent is not None else "at the root"


def _describe(obj: dict[str, Any], key: str) -> str:
    if key not in obj:
        return f"no '{key}'"
    return f"{key}={obj[key]!r} ({type(obj[key]).__name__})"

"""SQL transforms: a DuckDB SELECT over upstream components, named by their ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb

from headwater.errors import HeadwaterError


class TransformSqlError(HeadwaterError, ValueError):
    """A transform's SQL does not parse, is not one SELECT, or reads something it may not."""


def referenced_tables(sql: str, *, component: str) -> set[str]:
    """The tables a SELECT reads (common table expressions excluded), found by DuckDB's own
    parser without running anything.

    Raises:
        TransformSqlError: the SQL does not parse or is not exactly one SELECT statement.
    """
    with duckdb.connect() as db:
        row = db.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    parsed: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if parsed.get("error"):
        message = str(parsed.get("error_message", "it does not parse"))
        if "Only SELECT" in message or parsed.get("error_type") == "not implemented":
            message = "only a SELECT statement (WITH … SELECT …) can be a transform"
        raise TransformSqlError(f"the SQL of transform '{component}' is not valid: {message}")
    statements: list[Any] = parsed.get("statements", [])
    if len(statements) != 1:
        raise TransformSqlError(
            f"the SQL of transform '{component}' holds {len(statements)} statements; write "
            "exactly one SELECT"
        )
    tables: set[str] = set()
    ctes: set[str] = set()
    for node in _nodes(statements[0]):
        if node.get("type") == "BASE_TABLE" and "table_name" in node:
            if node.get("schema_name") or node.get("catalog_name"):
                raise TransformSqlError(
                    f"the SQL of transform '{component}' reads "
                    f"'{'.'.join(node['qualified_name']['path'])}'; name upstream components "
                    "by their ids alone"
                )
            tables.add(node["table_name"])
        elif node.get("type") == "TABLE_FUNCTION":
            raise TransformSqlError(
                f"the SQL of transform '{component}' calls a table function; a transform reads "
                "its upstream components only (name them by id)"
            )
        for cte in node.get("cte_map", {}).get("map", []) if isinstance(node, dict) else []:
            ctes.add(cte["key"])
    return tables - ctes


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)

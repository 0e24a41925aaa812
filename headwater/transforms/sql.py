"""SQL transforms: a DuckDB SELECT over upstream components, named by their ids."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from headwater.engine.boundary import guard
from headwater.errors import ConnectorError, HeadwaterError, Where

# Set after the inputs are registered: no files, no network, no extensions, no Python variables
# found by name, and the configuration locked so the SQL cannot set any of it back.
_LOCKDOWN = (
    "SET python_enable_replacements = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


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


def check_inputs(sql: str, names: Iterable[str], *, component: str) -> None:
    """Refuse SQL that reads anything but the inputs, before anything runs.

    Raises:
        TransformSqlError: the SQL is not one SELECT, or reads a table that is not an input.
    """
    known = list(names)
    lowered = {n.lower() for n in known}  # SQL identifiers are case-insensitive
    unknown = sorted(
        t for t in referenced_tables(sql, component=component) if t.lower() not in lowered
    )
    if unknown:
        raise TransformSqlError(
            f"the SQL of transform '{component}' reads {', '.join(unknown)}, which "
            f"{'is not an input' if len(unknown) == 1 else 'are not inputs'}; its inputs are "
            f"{', '.join(known)} (add the component to the inputs, or fix the name)"
        )


def connect(tables: Mapping[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB that sees `tables`, each under its name, and nothing else."""
    con = duckdb.connect()
    try:
        for name, table in tables.items():
            con.register(name, table)
        for statement in _LOCKDOWN:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def run_sql(sql: str, tables: Mapping[str, pa.Table], where: Where) -> pa.Table:
    """The result of a transform's SELECT over `tables` (checked with `check_inputs` first).

    Raises:
        ConnectorError: the SQL failed as it ran (a missing column, a bad cast), located at
            `where`.
    """
    with guard(where), connect(tables) as con:
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise ConnectorError(f"the SQL failed: {exc}", hint="fix the transform's SQL") from None


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)

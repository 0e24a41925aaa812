"""SQL over stored data: DuckDB, one view per component over its committed Parquet files."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from headwater.catalog import Catalog
from headwater.store import Store

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def connect(catalog: Catalog, store: Store, sql: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per component. Given `sql`, only the components it
    mentions get views (each view reads its files' footers, so this keeps queries quick)."""
    con = duckdb.connect()
    if not store.local:
        con.register_filesystem(store.fs)
    mentioned = set(_WORD.findall(sql)) if sql is not None else None
    for component in catalog.components():
        if mentioned is not None and component.name not in mentioned:
            continue
        files = [f for p in catalog.partitions(component.id) for f in p.files]
        schema = catalog.component_schema(component.id)
        create_view(con, component.name, [store.query_path(f) for f in files], schema)
    return con


def create_view(
    con: duckdb.DuckDBPyConnection, name: str, paths: list[str], schema: pa.Schema
) -> None:
    if not paths:
        con.register(name, schema.empty_table())
        return
    columns = ", ".join(_quote(c) for c in schema.names) or "*"
    listing = ", ".join(_literal(p) for p in paths)
    con.execute(
        f"CREATE VIEW {_quote(name)} AS SELECT {columns} "
        f"FROM read_parquet([{listing}], union_by_name = true)"
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

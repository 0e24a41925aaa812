"""SQL over stored data: DuckDB, one view per component over its committed Parquet files."""

from __future__ import annotations

import re
from collections import defaultdict

import duckdb
import pyarrow as pa
import pyarrow.types as pat

from headwater.catalog import Catalog
from headwater.catalog.catalog import read_schema
from headwater.store import Store

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Group = tuple[list[str], pa.Schema]  # files sharing one partition schema


def connect(catalog: Catalog, store: Store, sql: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per component. Given `sql`, only the components it
    mentions get views (each view reads its files' footers, so this keeps queries quick)."""
    con = duckdb.connect()
    try:
        if not store.local:
            con.register_filesystem(store.fs)
        # SQL identifiers are case-insensitive: `FROM sales` names component Sales too.
        mentioned = {w.lower() for w in _WORD.findall(sql)} if sql is not None else None
        for component in catalog.components():
            if mentioned is not None and component.name.lower() not in mentioned:
                continue
            paths: defaultdict[str, list[str]] = defaultdict(list)
            for partition in catalog.partitions(component.id):
                paths[partition.schema_id] += [store.query_path(f) for f in partition.files]
            found = catalog.schemas(paths)
            groups = [(files, found[schema_id]) for schema_id, files in paths.items() if files]
            create_view(con, component.name, groups)
    except BaseException:
        con.close()
        raise
    return con


def create_view(con: duckdb.DuckDBPyConnection, name: str, groups: list[Group]) -> None:
    """A view laid out as the component's read schema: one SELECT per partition schema, with
    NULL for columns a group lacks and a cast to text where the read schema fell back to it."""
    schema = read_schema(g[1] for g in groups)
    if not groups or not schema.names:
        con.register(name, schema.empty_table())
        return
    selects = []
    for files, group_schema in groups:
        columns = [_column(f, group_schema) for f in schema]
        listing = ", ".join(_literal(p) for p in files)
        selects.append(
            f"SELECT {', '.join(columns)} FROM read_parquet([{listing}], union_by_name = true)"
        )
    con.execute(f"CREATE VIEW {_quote(name)} AS {' UNION ALL BY NAME '.join(selects)}")


def _column(target: pa.Field, group: pa.Schema) -> str:
    name = _quote(target.name)
    index = group.get_field_index(target.name)
    if index < 0 or pat.is_null(group.field(index).type):
        return f"NULL AS {name}"
    if pat.is_string(target.type) and not pat.is_string(group.field(index).type):
        return f"CAST({name} AS VARCHAR) AS {name}"
    return name


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

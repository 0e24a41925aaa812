"""A PostgreSQL sink: applies a stream's changes to a table, one transaction per commit.

With a primary key, +1 rows are upserted (INSERT ... ON CONFLICT DO UPDATE) and keys whose only
change is -1 are deleted; without one, +1 rows are inserted and -1 rows remove one equal row.
On a durable stream the sink stores the last commit it applied in `headwater_stream_progress`,
in the same transaction as the data, so after a restart it is sent exactly the commits it lacks.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from headwater import failpoints
from headwater.errors import HeadwaterError
from headwater.stream.sinks import DIFF, TIME

PROGRESS = "headwater_stream_progress"


class PostgresSinkError(HeadwaterError):
    """The table or the server cannot take this stream."""


def pg_type(t: pa.DataType) -> str:
    if pat.is_boolean(t):
        return "BOOLEAN"
    if pat.is_integer(t):
        return "BIGINT"
    if pat.is_floating(t):
        return "DOUBLE PRECISION"
    if pat.is_string(t) or pat.is_large_string(t):
        return "TEXT"
    if pat.is_binary(t) or pat.is_large_binary(t):
        return "BYTEA"
    if pat.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pat.is_date(t):
        return "DATE"
    raise PostgresSinkError(f"no PostgreSQL column type for Arrow type {t}")


class PostgresSink:
    """Keeps a PostgreSQL table equal to the stream's current state."""

    durable = True

    def __init__(self, dsn: str, table: str, primary_key: list[str]) -> None:
        # psycopg takes libpq URLs; accept the SQLAlchemy form the catalog settings use too.
        self.dsn = dsn.replace("postgresql+psycopg://", "postgresql://", 1)
        self.table = table
        self.primary_key = primary_key
        self.name = f"postgres:{table}"
        self._connection: Any = None

    def open(self, schema: pa.Schema, *, stream: str, durable: bool) -> int | None:
        try:
            import psycopg
            from psycopg import sql
        except ImportError:
            raise PostgresSinkError(
                "write_postgres needs psycopg: pip install 'headwater[postgres]'"
            ) from None
        self._sql = sql
        self.key = f"{stream}->{self.table}"
        self.columns = [f.name for f in schema if f.name not in (TIME, DIFF)]
        try:
            self._connection = psycopg.connect(self.dsn, autocommit=False)
        except psycopg.Error as exc:
            raise PostgresSinkError(
                f"cannot connect to PostgreSQL for {self.name}: {exc}"
            ) from None
        target = self._identifier()
        definitions = [
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f.type)))
            for f in schema
            if f.name in self.columns
        ]
        if self.primary_key:
            definitions.append(
                sql.SQL("PRIMARY KEY ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, self.primary_key))
                )
            )
        with self._connection.transaction():
            self._connection.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                    target, sql.SQL(", ").join(definitions)
                )
            )
            self._connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (sink TEXT PRIMARY KEY, seq BIGINT NOT NULL, "
                    "updated_at TIMESTAMPTZ NOT NULL)"
                ).format(sql.Identifier(PROGRESS))
            )
            if not durable:  # no log to resume from: the stream starts from scratch
                self._connection.execute(
                    sql.SQL("DELETE FROM {} WHERE sink = %s").format(sql.Identifier(PROGRESS)),
                    [self.key],
                )
                return None
            row = self._connection.execute(
                sql.SQL("SELECT seq FROM {} WHERE sink = %s").format(sql.Identifier(PROGRESS)),
                [self.key],
            ).fetchone()
        return int(row[0]) if row else None

    def _identifier(self) -> Any:
        return self._sql.Identifier(*self.table.split("."))

    def write(self, seq: int, changes: pa.Table) -> None:
        sql = self._sql
        target = self._identifier()
        columns = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        rows = changes.select(self.columns).to_pylist()
        diffs = changes.column(DIFF).to_pylist()
        with self._connection.transaction(), self._connection.cursor() as cur:
            if self.primary_key:
                self._apply_keyed(cur, target, columns, rows, diffs)
            else:
                self._apply_appended(cur, target, columns, rows, diffs)
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (sink, seq, updated_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (sink) DO UPDATE SET seq = EXCLUDED.seq, "
                    "updated_at = EXCLUDED.updated_at"
                ).format(sql.Identifier(PROGRESS)),
                [self.key, seq, datetime.datetime.now(datetime.UTC)],
            )
            failpoints.hit("stream.postgres_in_transaction")

    def _apply_keyed(
        self, cur: Any, target: Any, columns: Any, rows: list[dict[str, Any]], diffs: list[int]
    ) -> None:
        sql = self._sql
        inserted = {self._key(r) for r, d in zip(rows, diffs, strict=True) if d > 0}
        deleted = [
            self._key(r)
            for r, d in zip(rows, diffs, strict=True)
            if d < 0 and self._key(r) not in inserted
        ]
        if deleted:
            condition = sql.SQL(" AND ").join(
                sql.SQL("{} = %s").format(sql.Identifier(k)) for k in self.primary_key
            )
            cur.executemany(sql.SQL("DELETE FROM {} WHERE {}").format(target, condition), deleted)
        upserts = [
            tuple(r[c] for c in self.columns) for r, d in zip(rows, diffs, strict=True) if d > 0
        ]
        if upserts:
            update = conflict_update(self.columns, self.primary_key)
            statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
                target,
                columns,
                sql.SQL(", ").join(sql.Placeholder() * len(self.columns)),
                sql.SQL(", ").join(map(sql.Identifier, self.primary_key)),
                update,
            )
            cur.executemany(statement, upserts)

    def _key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.primary_key)

    def _apply_appended(
        self, cur: Any, target: Any, columns: Any, rows: list[dict[str, Any]], diffs: list[int]
    ) -> None:
        sql = self._sql
        inserts = [
            tuple(r[c] for c in self.columns) for r, d in zip(rows, diffs, strict=True) if d > 0
        ]
        if inserts:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, columns)) as copy:
                for values in inserts:
                    copy.write_row(values)
        for row, diff in zip(rows, diffs, strict=True):
            if diff < 0:  # remove one equal row
                condition = sql.SQL(" AND ").join(
                    sql.SQL("{} IS NOT DISTINCT FROM %s").format(sql.Identifier(c))
                    for c in self.columns
                )
                cur.execute(
                    sql.SQL(
                        "DELETE FROM {0} WHERE ctid = (SELECT ctid FROM {0} WHERE {1} LIMIT 1)"
                    ).format(target, condition),
                    [row[c] for c in self.columns],
                )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def conflict_update(columns: Sequence[str], key: Sequence[str]) -> Any:
    """The ON CONFLICT action of an upsert by `key` (this sink's, and write connectors'):
    every other column set from the new row (a psycopg `sql.Composable`)."""
    from psycopg import sql

    others = [c for c in columns if c not in key]
    if not others:
        return sql.SQL("DO NOTHING")
    return sql.SQL("DO UPDATE SET {}").format(
        sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others)
    )

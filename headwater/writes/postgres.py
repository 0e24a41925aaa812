"""The PostgreSQL target: a table filled from the upstream's partitions, one transaction each.

`append` COPYs the rows of new and changed partitions into the table (a changed partition's
earlier rows stay; a removed partition's rows stay). `upsert` stages a partition's rows in a
temporary table and runs INSERT ... ON CONFLICT (key) DO UPDATE from it, and keeps the table
equal to the upstream by key:
- a key's row is the one written last: within a partition its last row, within a run the
  partition last in upstream order (partitions are written in that order), across runs the
  partition written most recently;
- when a partition is removed, or a changed partition no longer has a key, a key another
  upstream partition still holds stays, with that partition's row (of the holders left, the
  one written most recently; its row is read back from the upstream's committed files when
  the table had the departing partition's row). Only keys no partition holds any more are
  deleted.

Bookkeeping tables live beside the target table (in its schema), written in the same
transaction as the rows, under the writer `<component>:<table>:<mode>[(<key>)]`:
- `headwater_writes (writer, partition, version, rows, written_at)`: each partition written,
  at its version. The next run diffs the upstream against this table, not the catalog (whose
  write marks are a copy of it), and each partition transaction first takes a per-writer
  advisory lock and skips a version already recorded. So a partition version is applied
  exactly once, whether the run dies before or after its commit, or a stalled runner races
  the one that took over its lease.
- `headwater_write_keys (writer, key, partition, seq)`, upsert only: every partition holding
  each key (the key as a JSON array), in the order they were written (see
  `headwater.writes.postgres_keys`, which also upgrades the first layout, one partition per
  key, by having its writers write every partition again). This is how the rows of a removed
  partition are found once its data is gone from the store.

A table that does not exist is created from the upstream's Arrow schema (with a primary key on
`key` for an upsert); the writer's bookkeeping is then cleared, so dropping the table has every
partition written again. Changing the mode or the key is a new writer: everything is written
again (after an upsert, an append duplicates the rows already there).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from headwater import failpoints
from headwater.client.models import PostgresTarget
from headwater.secrets import scrub
from headwater.stream.postgres import conflict_update
from headwater.writes.errors import WriteError
from headwater.writes.plan import UpstreamPartition
from headwater.writes.postgres_keys import KEYS, SEQUENCE, KeyHolders, prepare_keys
from headwater.writes.postgres_values import (
    ORDER,
    copy_rows,
    pg_message,
    pg_type,
    stage_rows,
)
from headwater.writes.targets import ReadPartition, Written

WRITES = "headwater_writes"
STAGE = "headwater_stage"


class PostgresWriter:
    """Writes partitions into one PostgreSQL table."""

    def __init__(
        self,
        component: str,
        target: PostgresTarget,
        connection_settings: Mapping[str, Any],
        credential: str | None,
        log: Callable[[str], None],
        read: ReadPartition,
    ) -> None:
        try:
            from psycopg.conninfo import conninfo_to_dict
            from psycopg.errors import ProgrammingError
        except ImportError:
            raise WriteError(
                f"write connector '{component}': writing to PostgreSQL needs psycopg "
                "(fix: pip install 'headwater[postgres]')"
            ) from None

        self.component = component
        self.target = target
        self.credential = credential
        self.url_password: str | None = None
        self.log = log
        self.read = read
        url = target.url or connection_settings.get("url")
        if not url or not isinstance(url, str):
            raise WriteError(
                f"write connector '{component}': postgres table '{target.table}' has no "
                "database URL (fix: set the target's `url`, or use a connection whose settings "
                "have a `url`)"
            )
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            info = conninfo_to_dict(self.url)
        except ProgrammingError:  # its message may quote the URL, password and all
            raise WriteError(
                f"write connector '{component}': the database URL of postgres table "
                f"'{target.table}' is not valid (fix: write it as "
                "postgresql://user@host:port/database)"
            ) from None
        password = info.get("password")
        self.url_password = str(password) if password else None
        self.connect_timeout = None if "connect_timeout" in info else 10
        place = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname')}"
        self.description = f"postgres table '{target.table}' on {place}"
        self.upsert = target.mode == "upsert"
        self.writer = f"{component}:{target.table}:{target.mode}" + (
            f"({','.join(target.key)})" if self.upsert else ""
        )
        self._connection: Any = None

    # -- helpers --------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return scrub(scrub(text, self.credential), self.url_password)

    def _ident(self, name: str) -> Any:
        """A bookkeeping table beside the target (in its schema)."""
        from psycopg import sql

        *schema_name, _ = self.target.table.split(".")
        return sql.Identifier(*schema_name, name)

    def _failed(self, doing: str, exc: BaseException, partition: str | None = None) -> WriteError:
        where = f", partition '{partition}'" if partition is not None else ""
        return WriteError(
            self._scrub(
                f"write connector '{self.component}' to {self.description}{where}: {doing} "
                f"failed: {pg_message(exc)}"
            )
        )

    # -- the Target protocol --------------------------------------------------------------------

    def open(
        self, schema: pa.Schema, names: Sequence[str], marked: Mapping[str, str]
    ) -> dict[str, str]:
        import psycopg

        self.columns = list(schema.names)
        types = {f.name: pg_type(self.component, f) for f in schema}
        if self.upsert and self.columns:
            missing = [k for k in self.target.key if k not in types]
            if missing:
                raise WriteError(
                    f"write connector '{self.component}' to {self.description}: key column "
                    f"'{missing[0]}' is not a column of the upstream (its columns: "
                    f"{', '.join(self.columns)}) (fix: name upstream columns in `key`)"
                )
        options: dict[str, Any] = {"autocommit": False}
        if self.credential:
            options["password"] = self.credential
        if self.connect_timeout:
            options["connect_timeout"] = self.connect_timeout
        try:
            self._connection = psycopg.connect(self.url, **options)
        except psycopg.Error as exc:
            raise self._failed("connecting", exc) from None
        try:
            with self._connection.transaction():
                return self._prepare(types)
        except psycopg.Error as exc:
            raise self._failed("preparing the table", exc) from None

    def _prepare(self, types: dict[str, str]) -> dict[str, str]:
        from psycopg import sql

        c = self._connection
        # Writers sharing a schema create and upgrade its bookkeeping one at a time.
        lock = f"headwater bookkeeping {self._ident(WRITES).as_string(c)}"
        c.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [lock])
        c.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (writer TEXT NOT NULL, partition TEXT NOT NULL, "
                "version TEXT NOT NULL, rows BIGINT NOT NULL, written_at TIMESTAMPTZ NOT NULL, "
                "PRIMARY KEY (writer, partition))"
            ).format(self._ident(WRITES))
        )
        if self.upsert:
            prepare_keys(c, self._ident(KEYS), self._ident(SEQUENCE), self._ident(WRITES), self.log)
        self.table = sql.Identifier(*self.target.table.split("."))
        regclass = self.table.as_string(c)
        exists = c.execute("SELECT to_regclass(%s)", [regclass]).fetchone()[0] is not None
        if not exists:
            if self.columns:
                self._create(types)
            c.execute(
                sql.SQL("DELETE FROM {} WHERE writer = %s").format(self._ident(WRITES)),
                [self.writer],
            )
            if self.upsert:
                c.execute(
                    sql.SQL("DELETE FROM {} WHERE writer = %s").format(self._ident(KEYS)),
                    [self.writer],
                )
        existing = dict(
            c.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                [regclass],
            ).fetchall()
        )
        if exists:
            self._check_table(types, existing, regclass)
        self.keys = KeyHolders(
            writer=self.writer,
            table=self.table,
            columns=self.columns,
            key=list(self.target.key),
            key_types=[existing.get(k) for k in self.target.key],
            keys=self._ident(KEYS),
            sequence=self._ident(SEQUENCE),
            read=self.read,
        )
        held = c.execute(
            sql.SQL("SELECT partition, version FROM {} WHERE writer = %s").format(
                self._ident(WRITES)
            ),
            [self.writer],
        ).fetchall()
        return {str(p): str(v) for p, v in held}

    def _create(self, types: dict[str, str]) -> None:
        from psycopg import sql

        columns = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(types[name]))
            for name in self.columns
        ]
        if self.upsert:
            columns.append(
                sql.SQL("PRIMARY KEY ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, self.target.key))
                )
            )
        self._connection.execute(
            sql.SQL("CREATE TABLE {} ({})").format(self.table, sql.SQL(", ").join(columns))
        )
        self.log(f"created {self.description} ({len(self.columns)} columns)")

    def _check_table(self, types: dict[str, str], existing: dict[str, str], regclass: str) -> None:
        missing = [name for name in self.columns if name not in existing]
        if missing:
            fix = "; ".join(
                f'ALTER TABLE {regclass} ADD COLUMN "{name}" {types[name]}' for name in missing
            )
            raise WriteError(
                f"write connector '{self.component}' to {self.description}: the table has no "
                f"column '{missing[0]}' of the upstream ({len(missing)} missing: "
                f"{', '.join(missing)}) (fix: {fix}; or drop the table to have it created)"
            )
        if not self.upsert or not self.columns:
            return
        unique = self._connection.execute(
            "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indpred IS NULL "
            "AND i.indexprs IS NULL GROUP BY i.indexrelid",
            [regclass],
        ).fetchall()
        if not any(set(columns) == set(self.target.key) for (columns,) in unique):
            key = ", ".join(f'"{k}"' for k in self.target.key)
            raise WriteError(
                f"write connector '{self.component}' to {self.description}: an upsert by "
                f"({key}) needs a unique constraint on exactly those columns, and the table "
                f"has none (fix: ALTER TABLE {regclass} ADD PRIMARY KEY ({key}), or CREATE "
                f"UNIQUE INDEX ON {regclass} ({key}); or set `key` to the columns of an "
                "existing unique constraint)"
            )

    def write(self, partition: UpstreamPartition, batches: Iterable[pa.RecordBatch]) -> Written:
        import psycopg

        try:
            with self._connection.transaction(), self._connection.cursor() as cur:
                if self._held(cur, partition.name) == partition.version:
                    return Written(0, 0, f"{self.description} (already written)")
                if self.upsert:
                    rows = self._upsert(cur, partition.name, batches)
                else:
                    rows = copy_rows(cur, self.table, self.columns, batches)
                self._record(cur, partition, rows)
                failpoints.hit("write.postgres_in_transaction")
        except psycopg.Error as exc:
            raise self._failed("writing", exc, partition.name) from None
        except WriteError:
            raise
        except Exception as exc:  # reading the partition, or a value psycopg cannot send
            raise self._failed("writing", exc, partition.name) from None
        return Written(rows, 0, self.description)

    def _held(self, cur: Any, partition: str) -> str | None:
        """The version of `partition` this writer holds, read under the writer's lock (held
        until the transaction ends: one writer's partitions are written one at a time)."""
        from psycopg import sql

        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [self.writer])
        row = cur.execute(
            sql.SQL("SELECT version FROM {} WHERE writer = %s AND partition = %s").format(
                self._ident(WRITES)
            ),
            [self.writer, partition],
        ).fetchone()
        return str(row[0]) if row else None

    def _upsert(self, cur: Any, partition: str, batches: Iterable[pa.RecordBatch]) -> int:
        from psycopg import sql

        rows = stage_rows(cur, STAGE, self.table, self.columns, batches)
        # Keys this partition held before and no longer has: released first.
        self.keys.release(cur, partition, self.keys.not_in(STAGE))
        columns = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        key = sql.SQL(", ").join(map(sql.Identifier, self.target.key))
        cur.execute(
            sql.SQL(
                "INSERT INTO {table} ({columns}) SELECT DISTINCT ON ({key}) {columns} FROM "
                "{stage} ORDER BY {key}, {order} DESC ON CONFLICT ({key}) {update}"
            ).format(
                table=self.table,
                columns=columns,
                key=key,
                stage=sql.Identifier(STAGE),
                order=sql.Identifier(ORDER),
                update=conflict_update(self.columns, self.target.key),
            )
        )
        self.keys.hold(cur, partition, STAGE)
        return rows

    def _record(self, cur: Any, partition: UpstreamPartition, rows: int) -> None:
        from psycopg import sql

        cur.execute(
            sql.SQL(
                "INSERT INTO {} (writer, partition, version, rows, written_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (writer, partition) DO UPDATE SET "
                "version = EXCLUDED.version, rows = EXCLUDED.rows, "
                "written_at = EXCLUDED.written_at"
            ).format(self._ident(WRITES)),
            [
                self.writer,
                partition.name,
                partition.version,
                rows,
                datetime.datetime.now(datetime.UTC),
            ],
        )

    def remove(self, partition: str) -> str:
        import psycopg
        from psycopg import sql

        deleted = restored = 0
        try:
            with self._connection.transaction(), self._connection.cursor() as cur:
                self._held(cur, partition)
                if self.upsert:
                    deleted, restored = self.keys.release(cur, partition)
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE writer = %s AND partition = %s").format(
                        self._ident(WRITES)
                    ),
                    [self.writer, partition],
                )
        except psycopg.Error as exc:
            raise self._failed("removing", exc, partition) from None
        except Exception as exc:  # reading back a partition that still holds a key
            raise self._failed("removing", exc, partition) from None
        if not self.upsert:
            return f"removed partition '{partition}': its rows stay (an append never deletes)"
        done = f"removed partition '{partition}': deleted {deleted} row(s) by key"
        if restored:
            done += f", wrote back {restored} row(s) of keys other partitions still hold"
        return done

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

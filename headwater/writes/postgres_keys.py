"""An upsert's key bookkeeping: which upstream partitions hold each key of the table.

`headwater_write_keys (writer, key, partition, seq)` has a row for each key (as a JSON array)
and each partition that holds it; `seq` orders the partition writes (from the sequence
`headwater_write_keys_seq`), so for each key the holder with the largest `seq` is the one whose
row the table has: the last written. A partition "releases" its keys when it is removed, or
when a changed version of it no longer has them. A released key the partition was the last
writer of then either
- has no holder left: its row is deleted from the table; or
- falls back to the remaining holder written most recently: the key's row is written again
  from that partition's committed files in the store. Nothing is written back when that
  partition has left the upstream or no longer has the key: it is itself rewritten or removed
  later in the same run, which releases the key again.
It all happens in the partition's transaction, one set-based statement per step and one COPY
per partition read back.

The first layout, `(writer, key, partition)` with one partition per key (the last writer),
lost a key on removing its last writer while another partition still held it. A table in that
layout is upgraded in place, and every partition of its writers is written again once (their
`headwater_writes` versions are set to `REWRITE`), which records every holder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headwater.stream.postgres import conflict_update
from headwater.writes.postgres_values import ORDER, stage_rows
from headwater.writes.targets import ReadPartition

KEYS = "headwater_write_keys"
SEQUENCE = "headwater_write_keys_seq"
LOST = "headwater_lost_keys"
RESTORE = "headwater_restore"
REWRITE = "rewrite: key bookkeeping upgraded"  # never a partition version (`<fp>@<hash>`)


def prepare_keys(c: Any, keys: Any, sequence: Any, writes: Any, log: Callable[[str], None]) -> None:
    """Create the key bookkeeping beside a table (`keys`, `sequence` and `writes` are psycopg
    identifiers), or upgrade it from the first layout. Call under the bookkeeping lock."""
    from psycopg import sql

    c.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (writer TEXT NOT NULL, key JSONB NOT NULL, "
            "partition TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (writer, key, partition))"
        ).format(keys)
    )
    c.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (writer, partition)").format(
            sql.Identifier(f"{KEYS}_partition"), keys
        )
    )
    c.execute(sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(sequence))
    regclass = keys.as_string(c)
    current = c.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'seq' "
        "AND NOT attisdropped",
        [regclass],
    ).fetchone()
    if current is not None:
        return
    (writers,) = c.execute(sql.SQL("SELECT count(DISTINCT writer) FROM {}").format(keys)).fetchone()
    primary = c.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
        [regclass],
    ).fetchone()
    c.execute(sql.SQL("ALTER TABLE {} ADD COLUMN seq BIGINT NOT NULL DEFAULT 0").format(keys))
    c.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN seq DROP DEFAULT").format(keys))
    if primary is not None:
        c.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(keys, sql.Identifier(primary[0]))
        )
    c.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (writer, key, partition)").format(keys))
    c.execute(
        sql.SQL("UPDATE {} SET version = %s WHERE writer IN (SELECT writer FROM {})").format(
            writes, keys
        ),
        [REWRITE],
    )
    log(
        f"upgraded {regclass} from one partition per key to every partition holding each key: "
        f"every partition of its {writers} upsert writer(s) is written again on their next run"
    )


@dataclass(frozen=True)
class KeyHolders:
    """The key bookkeeping of one upsert writer into one table (psycopg identifiers)."""

    writer: str
    table: Any
    columns: list[str]
    key: list[str]
    key_types: list[str | None]  # None: the table does not exist (the upstream has no columns)
    keys: Any
    sequence: Any
    read: ReadPartition

    def _staged_key(self, alias: str) -> Any:
        from psycopg import sql

        return sql.SQL("jsonb_build_array({})").format(
            sql.SQL(", ").join(sql.Identifier(alias, k) for k in self.key)
        )

    def hold(self, cur: Any, partition: str, stage: str) -> None:
        """Record that `partition` holds the keys of its rows in `stage`, written last."""
        from psycopg import sql

        (seq,) = cur.execute(
            "SELECT nextval(%s::regclass)", [self.sequence.as_string(cur)]
        ).fetchone()
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (writer, key, partition, seq) SELECT DISTINCT %s, {}, %s, %s "
                "FROM {} s ON CONFLICT (writer, key, partition) DO UPDATE SET seq = EXCLUDED.seq"
            ).format(self.keys, self._staged_key("s"), sql.Identifier(stage)),
            [self.writer, partition, seq],
        )

    def not_in(self, stage: str) -> Any:
        """The `release` condition for the keys a partition's new rows in `stage` lack."""
        from psycopg import sql

        return sql.SQL("AND NOT EXISTS (SELECT 1 FROM {} s WHERE {} = k.key)").format(
            sql.Identifier(stage), self._staged_key("s")
        )

    def release(self, cur: Any, partition: str, condition: Any = None) -> tuple[int, int]:
        """Forget that `partition` holds its keys (those meeting `condition`, all when None);
        delete the rows of keys no partition holds any more and write back, from the holder
        written last, those `partition` was the last writer of. Returns (deleted, restored)."""
        from psycopg import sql

        lost = sql.Identifier(LOST)
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} (key JSONB NOT NULL, source TEXT) ON COMMIT DROP").format(
                lost
            )
        )
        # One snapshot for the whole statement: the subqueries still see the deleted rows,
        # hence `h.partition <> %(partition)s`. A key is lost when no other holder was written
        # after `partition`; its source is the holder written last, NULL when none is left.
        cur.execute(
            sql.SQL(
                "WITH gone AS (DELETE FROM {keys} k WHERE k.writer = %(writer)s "
                "AND k.partition = %(partition)s {condition} RETURNING k.key, k.seq) "
                "INSERT INTO {lost} (key, source) SELECT g.key, (SELECT h.partition FROM {keys} h "
                "WHERE h.writer = %(writer)s AND h.key = g.key AND h.partition <> %(partition)s "
                "ORDER BY h.seq DESC, h.partition DESC LIMIT 1) FROM gone g WHERE NOT EXISTS "
                "(SELECT 1 FROM {keys} h WHERE h.writer = %(writer)s AND h.key = g.key AND "
                "h.partition <> %(partition)s AND (h.seq, h.partition) > (g.seq, %(partition)s))"
            ).format(keys=self.keys, condition=condition or sql.SQL(""), lost=lost),
            {"writer": self.writer, "partition": partition},
        )
        deleted = restored = 0
        if all(t is not None for t in self.key_types):
            deleted = self._delete_unheld(cur)
            sources = cur.execute(
                sql.SQL(
                    "SELECT DISTINCT source FROM {} WHERE source IS NOT NULL ORDER BY source"
                ).format(lost)
            ).fetchall()
            for (source,) in sources:
                restored += self._restore(cur, str(source))
        cur.execute(sql.SQL("DROP TABLE {}").format(lost))
        return deleted, restored

    def _delete_unheld(self, cur: Any) -> int:
        from psycopg import sql

        match = sql.SQL(" AND ").join(
            sql.SQL("t.{} = (g.key->>{})::{}").format(
                sql.Identifier(k), sql.Literal(i), sql.SQL(str(t))
            )
            for i, (k, t) in enumerate(zip(self.key, self.key_types, strict=True))
        )
        cur.execute(
            sql.SQL("DELETE FROM {} t USING {} g WHERE g.source IS NULL AND {}").format(
                self.table, sql.Identifier(LOST), match
            )
        )
        return int(cur.rowcount)

    def _restore(self, cur: Any, source: str) -> int:
        """Write back, from partition `source`'s committed rows, the lost keys it now wrote
        last (within it, the last row of a key wins). Returns the rows written."""
        from psycopg import sql

        batches = self.read(source)
        if batches is None:  # removed upstream: removing it later in this run releases its keys
            return 0
        stage_rows(cur, RESTORE, self.table, self.columns, batches)
        key = sql.SQL(", ").join(sql.Identifier("s", k) for k in self.key)
        cur.execute(
            sql.SQL(
                "INSERT INTO {table} ({columns}) SELECT DISTINCT ON ({key}) {staged} FROM "
                "{stage} s JOIN {lost} g ON g.source = %s AND g.key = {staged_key} "
                "ORDER BY {key}, s.{order} DESC ON CONFLICT ({conflict}) {update}"
            ).format(
                table=self.table,
                columns=sql.SQL(", ").join(map(sql.Identifier, self.columns)),
                key=key,
                staged=sql.SQL(", ").join(sql.Identifier("s", c) for c in self.columns),
                stage=sql.Identifier(RESTORE),
                lost=sql.Identifier(LOST),
                staged_key=self._staged_key("s"),
                order=sql.Identifier(ORDER),
                conflict=sql.SQL(", ").join(map(sql.Identifier, self.key)),
                update=conflict_update(self.columns, self.key),
            ),
            [source],
        )
        restored = int(cur.rowcount)
        cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(RESTORE)))
        return restored

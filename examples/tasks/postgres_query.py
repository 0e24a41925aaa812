"""A task connector that runs a SQL query asynchronously on PostgreSQL.

`create` starts the query on a backend of its own and returns at once with the backend's pid
and a query id; `get` reports the phase (RUNNING while that backend works, SUCCEEDED with the
rows, FAILED with the database's message); `delete` cancels it with `pg_cancel_backend`.

Where the state lives. A query needs a client holding its connection until it ends, so
`create` hands the connection to a background thread. Everything else is in the database, so
any replica of the connector service answers `get` and `delete` for any query:

- `headwater_tasks.queries` has one row per query: its id, the idempotency key it was created
  with, the backend pid, its state, and, when done, its rows (as JSON) or its error;
- the thread runs the query as ONE statement that also stores the rows and marks the row
  succeeded, so the result and the success commit together;
- the backend's `application_name` is `headwater-task:<query id>`, so `get` and `delete` find
  it in `pg_stat_activity` and never touch another session that reused the pid.

If the process holding the connection dies, the backend goes away with its query; `get` then
reports RETRYABLE_FAILED, and Headwater's task runs start a new attempt.

Idempotent create: the idempotency key (Flyte's task execution id, or Headwater's component,
run and attempt) is stored with the query, so a repeated `create` returns the query already
started, and `recover(key)` finds it after a runner died inside `create`.

The query must return rows (SELECT, VALUES, WITH ... SELECT): it runs as a subquery. Its SQL
comes from the input `sql`, else the task template's `custom["sql"]`.

Serve it, or run it as a task component:

    headwater serve-connectors --connectors examples/tasks/postgres_query.py
    headwater task run examples/tasks/postgres_query.py -c answers \\
        --inputs '{"sql": "SELECT 42 AS answer"}' --output rows
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from google.protobuf import json_format
from psycopg import sql

from headwater.tasks import (
    AsyncConnector,
    Resource,
    ResourceMeta,
    TaskExecution,
    idempotency_key,
)

DSN = "postgresql://postgres@127.0.0.1:5432/test"
APP_PREFIX = "headwater-task:"
log = logging.getLogger("examples.postgres_query")

SETUP = """
CREATE SCHEMA IF NOT EXISTS headwater_tasks;
CREATE TABLE IF NOT EXISTS headwater_tasks.queries (
    query_id text PRIMARY KEY,
    idempotency_key text UNIQUE,
    pid integer NOT NULL,
    sql text NOT NULL,
    state text NOT NULL,  -- running, succeeded, failed, cancelled
    error text,
    rows json,
    row_count bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
"""


@dataclass
class QueryMeta(ResourceMeta):
    query_id: str
    pid: int


class PostgresQueryConnector(AsyncConnector):
    name = "PostgreSQL Query Connector"
    task_type_name = "postgres_query"
    metadata_type = QueryMeta

    def __init__(self, dsn: str = DSN) -> None:
        super().__init__()
        self.dsn = dsn
        self._ready = False
        self._setup_lock = threading.Lock()

    def create(
        self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs
    ) -> QueryMeta:
        statement = _query_text(task_template, inputs)
        key = idempotency_key(task_execution_metadata)
        self._setup()
        if key is not None and (started := self.recover(key)) is not None:
            return started  # created before with this key: the same query, not a second one
        query_id = uuid.uuid4().hex
        worker = psycopg.connect(self.dsn, autocommit=True, application_name=APP_PREFIX + query_id)
        try:
            pid = worker.info.backend_pid
            inserted = worker.execute(
                "INSERT INTO headwater_tasks.queries (query_id, idempotency_key, pid, sql, state)"
                " VALUES (%s, %s, %s, %s, 'running')"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING query_id",
                (query_id, key, pid, statement),
            ).fetchone()
        except BaseException:
            worker.close()
            raise
        if inserted is None:  # a concurrent create with the same key won the insert
            worker.close()
            winner = self.recover(key) if key is not None else None
            assert winner is not None
            return winner
        threading.Thread(
            target=_run_query,
            args=(worker, query_id, statement),
            name=f"postgres-query-{query_id[:8]}",
            daemon=True,
        ).start()
        return QueryMeta(query_id=query_id, pid=pid)

    def get(self, resource_meta: QueryMeta, **kwargs) -> Resource:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            # The backend first, then the row: the thread records the outcome before it
            # closes the connection, so "backend gone, row still running" means it died.
            backend = db.execute(
                "SELECT state, extract(epoch FROM now() - query_start) FROM pg_stat_activity"
                " WHERE pid = %s AND application_name = %s",
                (resource_meta.pid, APP_PREFIX + resource_meta.query_id),
            ).fetchone()
            row = db.execute(
                "SELECT state, error, rows, row_count FROM headwater_tasks.queries"
                " WHERE query_id = %s",
                (resource_meta.query_id,),
            ).fetchone()
        if row is None:
            return Resource(
                phase=TaskExecution.FAILED,
                message=f"no query {resource_meta.query_id} in headwater_tasks.queries",
            )
        state, error, rows, row_count = row
        info = {"query_id": resource_meta.query_id, "pid": resource_meta.pid}
        if state == "succeeded":
            return Resource(
                phase=TaskExecution.SUCCEEDED,
                message=f"{row_count} row(s)",
                outputs={"rows": rows},
                custom_info=info,
            )
        if state == "failed":
            return Resource(phase=TaskExecution.FAILED, message=error, custom_info=info)
        if state == "cancelled":
            return Resource(phase=TaskExecution.ABORTED, message=error, custom_info=info)
        if backend is not None:
            activity, seconds = backend
            return Resource(
                phase=TaskExecution.RUNNING,
                message=f"backend {resource_meta.pid} {activity} for {float(seconds or 0):.1f} s",
                custom_info=info,
            )
        return Resource(
            phase=TaskExecution.RETRYABLE_FAILED,
            message=f"the query's backend (pid {resource_meta.pid}) ended without recording a "
            "result: the process that held its connection stopped",
            custom_info=info,
        )

    def delete(self, resource_meta: QueryMeta, **kwargs) -> None:
        # Mark it first: a query that finishes between these two statements stays cancelled
        # (the thread only records an outcome on a row still 'running').
        with psycopg.connect(self.dsn, autocommit=True) as db:
            db.execute(
                "UPDATE headwater_tasks.queries SET state = 'cancelled', finished_at = now(),"
                " error = 'cancelled (delete)' WHERE query_id = %s AND state = 'running'",
                (resource_meta.query_id,),
            )
            db.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
                " WHERE pid = %s AND application_name = %s",
                (resource_meta.pid, APP_PREFIX + resource_meta.query_id),
            )

    def recover(self, idempotency_key: str, **kwargs) -> QueryMeta | None:
        self._setup()
        with psycopg.connect(self.dsn, autocommit=True) as db:
            row = db.execute(
                "SELECT query_id, pid FROM headwater_tasks.queries WHERE idempotency_key = %s",
                (idempotency_key,),
            ).fetchone()
        return None if row is None else QueryMeta(query_id=row[0], pid=row[1])

    def _setup(self) -> None:
        with self._setup_lock:
            if self._ready:
                return
            with psycopg.connect(self.dsn) as db:  # one transaction; the lock serializes DDL
                db.execute("SELECT pg_advisory_xact_lock(hashtext('headwater_tasks.queries'))")
                db.execute(SETUP)
            self._ready = True


def _query_text(task_template: Any, inputs: dict[str, Any] | None) -> str:
    custom = json_format.MessageToDict(task_template.custom) if task_template else {}
    text = (inputs or {}).get("sql") or custom.get("sql")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no query: give the SQL as the input 'sql' or the template's custom.sql")
    return text.strip().rstrip(";").strip()


def _run_query(worker: psycopg.Connection[Any], query_id: str, statement: str) -> None:
    """On the worker's backend: the query, its rows and its success in one statement."""
    run = sql.SQL(
        "UPDATE headwater_tasks.queries SET state = 'succeeded', finished_at = now(),"
        " rows = result.rows, row_count = result.n"
        " FROM (SELECT coalesce(json_agg(q), '[]'::json) AS rows, count(*) AS n"
        " FROM ({statement}) AS q) AS result"
        " WHERE query_id = {query_id} AND state = 'running'"
    ).format(statement=sql.SQL(statement), query_id=sql.Literal(query_id))
    try:
        with worker:
            try:
                worker.execute(run)
            except psycopg.errors.QueryCanceled:
                _record(worker, query_id, "cancelled", "cancelled (pg_cancel_backend)")
            except psycopg.Error as exc:
                _record(worker, query_id, "failed", _message(exc))
    except psycopg.Error as exc:  # the connection itself broke: get sees the backend gone
        log.warning("query %s: could not record its outcome: %s", query_id, exc)


def _record(worker: psycopg.Connection[Any], query_id: str, state: str, error: str) -> None:
    worker.execute(
        "UPDATE headwater_tasks.queries SET state = %s, error = %s, finished_at = now()"
        " WHERE query_id = %s AND state = 'running'",
        (state, error, query_id),
    )


def _message(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary or str(exc).strip().splitlines()[0]
    return f"{primary} (SQLSTATE {exc.sqlstate})" if exc.sqlstate else primary

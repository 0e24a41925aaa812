"""examples/tasks/postgres_query.py against the machine's PostgreSQL: a query started on its own
backend, polled to its rows; cancelled with pg_cancel_backend (seen in pg_stat_activity); a bad
query's message; dedupe and recover by idempotency key; a lost backend. Then the same connector
as a task component (rows landed as a partition) and served to flyteidl's own client stubs.

Each test gets a fresh database (`postgres_dsn`), except the one that loads the example by its
path and so uses its default, the `test` database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from flyteidl.admin import agent_pb2 as adm
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc

from headwater.tasks import ConnectorRegistry, Resource, TaskExecution
from headwater.tasks.component import TaskSpec, run_task
from headwater.tasks.execution import execution_metadata, idempotency_key
from headwater.tasks.loading import load_connectors
from headwater.tasks.poll import PollSpec
from headwater.tasks.server import ConnectorServer
from headwater.workspace import Workspace

pytestmark = pytest.mark.postgres

EXAMPLE = Path(__file__).parents[2] / "examples" / "tasks" / "postgres_query.py"
TEMPLATE = tasks_pb2.TaskTemplate(type="postgres_query")
FAST = PollSpec(first_seconds=0.005, max_seconds=0.1, timeout_seconds=20)


def until(check: Callable[[], Any], what: str, seconds: float = 10) -> Any:
    """Poll `check` with a growing wait until it returns something truthy."""
    deadline, wait = time.monotonic() + seconds, 0.005
    while (found := check()) is None or found is False:
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(wait)  # the poll's own backoff, not a stand-in for synchronisation
        wait = min(wait * 2, 0.2)
    return found


@pytest.fixture
def connector(postgres_dsn: str) -> Any:
    [loaded] = load_connectors([EXAMPLE])
    return type(loaded)(postgres_dsn)


def finished(connector: Any, meta: Any) -> Resource:
    def terminal() -> Resource | None:
        resource = connector.get(meta)
        return resource if resource.phase.is_terminal else None

    return until(terminal, "a terminal phase")


def backend(dsn: str, pid: int) -> tuple[str, str] | None:
    with psycopg.connect(dsn, autocommit=True) as db:
        row = db.execute(
            "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return None if row is None else (row[0], row[1])


def test_a_query_runs_on_its_own_backend_and_returns_its_rows(connector: Any) -> None:
    sql = "SELECT g AS n, g * 10 AS tens, 'x%y' AS text FROM generate_series(1, 3) AS g;"
    meta = connector.create(TEMPLATE, "", {"sql": sql})
    resource = finished(connector, meta)
    assert resource.phase == TaskExecution.SUCCEEDED and resource.message == "3 row(s)"
    assert resource.outputs == {
        "rows": [{"n": n, "tens": n * 10, "text": "x%y"} for n in (1, 2, 3)]
    }
    assert connector.get(meta) == resource, "get must keep answering after the end"
    again = connector.create(tasks_pb2.TaskTemplate(custom={"sql": "VALUES (1)"}), "", None)
    assert finished(connector, again).outputs == {"rows": [{"column1": 1}]}


def test_delete_cancels_the_backends_query(connector: Any, postgres_dsn: str) -> None:
    meta = connector.create(TEMPLATE, "", {"sql": "SELECT pg_sleep(30) AS slept"})

    def sleeping() -> bool:
        found = backend(postgres_dsn, meta.pid)
        return found is not None and found[0] == "active" and "pg_sleep(30)" in found[1]

    until(sleeping, "the query to be running on its backend")
    running = connector.get(meta)
    assert running.phase == TaskExecution.RUNNING
    assert running.message is not None and running.message.startswith(f"backend {meta.pid}")
    connector.delete(meta)
    until(lambda: not sleeping(), "pg_stat_activity to show the query cancelled")
    assert connector.get(meta).phase == TaskExecution.ABORTED
    connector.delete(meta)  # idempotent: nothing left to cancel
    assert finished(connector, meta).message == "cancelled (delete)"


def test_a_bad_query_fails_with_the_databases_message(connector: Any) -> None:
    meta = connector.create(TEMPLATE, "", {"sql": "SELECT * FROM no_such_table"})
    resource = finished(connector, meta)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message == 'relation "no_such_table" does not exist (SQLSTATE 42P01)'


def test_create_with_the_same_key_returns_the_same_query(connector: Any) -> None:
    metadata = execution_metadata(
        component="c", component_id="id", run_id=1, attempt=1, task_type="postgres_query",
        task_type_version=0,
    )  # fmt: skip
    first = connector.create(TEMPLATE, "", {"sql": "SELECT 1 AS one"}, metadata)
    assert connector.create(TEMPLATE, "", {"sql": "SELECT 1 AS one"}, metadata) == first
    assert connector.recover(idempotency_key(metadata)) == first
    assert connector.recover("headwater/c/id-1/c/7") is None
    finished(connector, first)


def test_a_lost_backend_is_a_retryable_failure(connector: Any, postgres_dsn: str) -> None:
    meta = connector.create(TEMPLATE, "", {"sql": "SELECT pg_sleep(30)"})
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("SELECT pg_terminate_backend(%s)", (meta.pid,))
    resource = finished(connector, meta)
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert "ended without recording a result" in (resource.message or "")


def test_a_task_component_lands_the_rows(any_workspace: Workspace, connector: Any) -> None:
    sql = "SELECT g AS n, g % 2 = 0 AS even FROM generate_series(1, 4) AS g"
    spec = TaskSpec(connector, inputs={"sql": sql}, output="rows", poll=FAST)
    run = run_task(any_workspace, "numbers", spec)
    assert (run.status, run.partition, run.rows) == ("succeeded", "000000000001", 4)
    rows = any_workspace.read_arrow("numbers").to_pylist()
    assert rows == [{"n": n, "even": n % 2 == 0} for n in (1, 2, 3, 4)]


def test_the_example_file_runs_as_a_task_component_on_the_test_database(
    workspace: Workspace,
) -> None:
    spec = TaskSpec(EXAMPLE, inputs={"sql": "SELECT 42 AS answer"}, output="rows", poll=FAST)
    run = run_task(workspace, "answers", spec)
    assert run.ok, run.error
    assert workspace.query("SELECT answer FROM answers").to_pylist() == [{"answer": 42}]
    [attempt] = run.attempts
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as db:
        db.execute(
            "DELETE FROM headwater_tasks.queries WHERE idempotency_key = %s",
            (attempt.idempotency_key,),
        )


@pytest.fixture
def stubs(connector: Any) -> Iterator[Any]:
    registry = ConnectorRegistry()
    registry.register(connector)
    with ConnectorServer(registry) as server, grpc.insecure_channel(server.target) as channel:
        yield agent_pb2_grpc.AsyncAgentServiceStub(channel)


def test_served_to_flyteidl_client_stubs(stubs: Any) -> None:
    def create(sql: str) -> bytes:
        literal = literals_pb2.Literal(
            scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value=sql))
        )
        request = adm.CreateTaskRequest(
            template=TEMPLATE, inputs=literals_pb2.LiteralMap(literals={"sql": literal})
        )
        return bytes(stubs.CreateTask(request, timeout=10).resource_meta)

    def poll(meta: bytes) -> Any:
        request = adm.GetTaskRequest(
            task_category=adm.TaskCategory(name="postgres_query"), resource_meta=meta
        )

        def terminal() -> Any:
            resource = stubs.GetTask(request, timeout=10).resource
            return resource if resource.phase not in (Phase.RUNNING, Phase.QUEUED) else None

        return until(terminal, "GetTask to report a terminal phase")

    Phase = execution_pb2.TaskExecution
    done = poll(create("SELECT 'a' AS letter UNION ALL SELECT 'b'"))
    assert done.phase == Phase.SUCCEEDED and done.message == "2 row(s)"
    rows = done.outputs.literals["rows"].collection.literals
    assert [row.scalar.generic["letter"] for row in rows] == ["a", "b"]

    sleeping = create("SELECT pg_sleep(30)")
    category = adm.TaskCategory(name="postgres_query")
    stubs.DeleteTask(adm.DeleteTaskRequest(task_category=category, resource_meta=sleeping))
    assert poll(sleeping).phase == Phase.ABORTED

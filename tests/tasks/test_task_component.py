"""Task components in Headwater's own runs, against the real catalog (SQLite and PostgreSQL):
create, poll with backoff, land one partition; retries, permanent failures, cancel, timeout,
Ctrl-C; and the write-ahead record behind an idempotent create.

The connectors here are small real implementations whose "external system" is a Python list;
waits are the poll backoff itself, kept tiny, and the one cross-thread step uses an Event.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from headwater.component import RetrySpec
from headwater.errors import SettingsError
from headwater.tasks import (
    AsyncConnector,
    PollSpec,
    Resource,
    ResourceMeta,
    SyncConnector,
    TaskExecution,
    idempotency_key,
)
from headwater.tasks.component import TaskSpec, reset_task, run_task
from headwater.tasks.literals import to_literal_map
from headwater.workspace import Workspace

FAST = PollSpec(first_seconds=0.001, max_seconds=0.005)
NO_WAIT = RetrySpec(attempts=3, backoff_seconds=0)
RUNNING = Resource(phase=TaskExecution.RUNNING, message="busy")


def succeeded(outputs: Any = None, message: str = "done") -> Resource:
    if outputs is None:
        outputs = {"rows": [{"n": 1}, {"n": 2}]}
    return Resource(phase=TaskExecution.SUCCEEDED, message=message, outputs=outputs)


@dataclass
class Meta(ResourceMeta):
    job: int


class Scripted(AsyncConnector):
    """Job k's polls answer `scripts[k-1]` in turn (the last answer repeats; an exception is
    raised); `create` raises `create_errors` first. Records every call."""

    name = "Scripted"
    task_type_name = "scripted"
    metadata_type = Meta

    def __init__(self, *scripts: list[Any], create_errors: tuple[Exception, ...] = ()) -> None:
        super().__init__()
        self.scripts = [list(script) for script in scripts] or [[succeeded()]]
        self.create_errors = list(create_errors)
        self.keys: list[str | None] = []
        self.calls: list[tuple[str, int]] = []
        self.running = threading.Event()

    async def create(
        self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs
    ):
        self.keys.append(idempotency_key(task_execution_metadata))
        if self.create_errors:
            raise self.create_errors.pop(0)
        self.calls.append(("create", len(self.keys)))
        return Meta(job=len(self.keys))

    def get(self, resource_meta, **kwargs):
        self.calls.append(("get", resource_meta.job))
        script = self.scripts[min(resource_meta.job, len(self.scripts)) - 1]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, BaseException):
            raise answer
        if answer.phase == TaskExecution.RUNNING:
            self.running.set()
        return answer

    async def delete(self, resource_meta, **kwargs):
        self.calls.append(("delete", resource_meta.job))

    def count(self, call: str) -> int:
        return sum(1 for name, _ in self.calls if name == call)


class Recovering(Scripted):
    """Finds the job a create started: `create` starts it, then raises (a lost answer)."""

    task_type_name = "recovering"

    def __init__(self, *scripts: list[Any]) -> None:
        super().__init__(*scripts)
        self.started: dict[str, int] = {}

    async def create(
        self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs
    ):
        key = idempotency_key(task_execution_metadata)
        assert key is not None
        self.started[key] = len(self.started) + 1
        self.calls.append(("create", self.started[key]))
        raise TimeoutError("the answer was lost")

    async def recover(self, idempotency_key, **kwargs):
        self.calls.append(("recover", 0))
        job = self.started.get(idempotency_key)
        return None if job is None else Meta(job=job)


def spec(connector: Any, **changes: Any) -> TaskSpec:
    values: dict[str, Any] = {"output": "rows", "poll": FAST, "retry": NO_WAIT}
    values.update(changes)
    return TaskSpec(connector, **values)


def test_a_run_creates_polls_and_lands_one_partition(any_workspace: Workspace) -> None:
    connector = Scripted([RUNNING, RUNNING, succeeded()])
    run = run_task(any_workspace, "jobs", spec(connector, inputs={"x": 1}, custom={"q": "s"}))
    assert (run.status, run.partition, run.rows, run.message) == (
        "succeeded",
        "000000000001",
        2,
        "done",
    )
    assert connector.calls == [("create", 1), ("get", 1), ("get", 1), ("get", 1)]
    [attempt] = run.attempts
    assert attempt.state == "landed" and attempt.resource_meta == Meta(job=1).encode()
    component = any_workspace.catalog.component("jobs")
    assert connector.keys == [attempt.idempotency_key]
    assert attempt.idempotency_key == f"headwater/jobs/{component.id}-{run.run_id}/jobs/0"
    assert any_workspace.read_arrow("jobs").to_pylist() == [{"n": 1}, {"n": 2}]
    [stored] = any_workspace.runs("jobs")
    assert (stored.status, stored.executor, stored.landed, stored.rows) == (
        "succeeded",
        "task",
        1,
        2,
    )
    again = run_task(any_workspace, "jobs", spec(Scripted()))
    assert again.partition == "000000000002"
    assert len(any_workspace.read_arrow("jobs")) == 4


def test_create_gets_the_template_inputs_and_an_execution_id(workspace: Workspace) -> None:
    seen: dict[str, Any] = {}

    class Seeing(Scripted):
        async def create(self, task_template, output_prefix, inputs=None, **kwargs):
            seen.update(template=task_template, prefix=output_prefix, inputs=inputs, **kwargs)
            return Meta(job=1)

    run_task(workspace, "seen", spec(Seeing(), inputs={"x": 2}, custom={"sql": "SELECT 1"}))
    assert seen["template"].type == "scripted" and seen["template"].custom["sql"] == "SELECT 1"
    assert seen["inputs"] == {"x": 2}
    assert seen["prefix"].endswith("/tasks/seen/1-1")
    execution = seen["task_execution_metadata"].task_execution_id
    assert (execution.node_execution_id.node_id, execution.retry_attempt) == ("seen", 0)


@pytest.mark.parametrize(
    "outputs, output, rows",
    [
        ({"a": 1, "b": "x"}, None, [{"a": 1, "b": "x"}]),
        ({"a": [1, 2], "b": ["x", "y"]}, None, [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]),
        ({"t": pd.DataFrame({"a": [3]})}, "t", [{"a": 3}]),
        ({"rows": [{"a": 1}, {"a": None}]}, "rows", [{"a": 1}, {"a": None}]),
        ({"t": pa.table({"a": [1, 2]})}, "t", [{"a": 1}, {"a": 2}]),
        (to_literal_map({"rows": [{"a": 1}], "n": 1}), "rows", [{"a": 1.0}]),
    ],
    ids=["scalars", "columns", "dataframe", "rows", "arrow", "literals"],
)
def test_outputs_land_in_each_accepted_shape(
    workspace: Workspace, outputs: Any, output: str | None, rows: list[dict[str, Any]]
) -> None:
    run = run_task(workspace, "shapes", spec(Scripted([succeeded(outputs)]), output=output))
    assert run.ok, run.error
    assert workspace.read_arrow("shapes").to_pylist() == rows


@pytest.mark.parametrize(
    "outputs, output, expected",
    [
        ({"rows": "text"}, "rows", "output 'rows' is a str; a task lands a list of dicts"),
        ({"rows": [1, 2]}, "rows", "output 'rows' is a list whose item 0 is a int"),
        ({"a": [1], "b": 2}, None, "the outputs is a dict mixing lists (a) and scalars (b)"),
        ({"a": [1], "b": [1, 2]}, None, "lists of different lengths"),
        ({"other": 1}, "rows", "no output named 'rows' (its outputs: other)"),
    ],
    ids=["str", "list-of-ints", "mixed", "lengths", "missing"],
)
def test_outputs_that_cannot_land_fail_the_run_saying_why(
    workspace: Workspace, outputs: Any, output: str | None, expected: str
) -> None:
    run = run_task(workspace, "bad", spec(Scripted([succeeded(outputs)]), output=output))
    assert run.status == "failed" and expected in (run.error or "")
    assert run.error is not None and run.error.startswith("the job succeeded, but")
    assert workspace.partitions("bad") == []
    assert [a.state for a in run.attempts] == ["failed"]


def test_a_job_without_outputs_succeeds_without_a_partition(workspace: Workspace) -> None:
    done = Resource(phase=TaskExecution.SUCCEEDED, message="created the index")
    run = run_task(workspace, "ddl", spec(Scripted([done])))
    assert (run.status, run.partition, run.message) == ("succeeded", None, "created the index")
    assert [a.state for a in run.attempts] == ["succeeded"]


def test_retryable_failed_starts_a_new_attempt_with_a_new_key(workspace: Workspace) -> None:
    flaky = Resource(phase=TaskExecution.RETRYABLE_FAILED, message="node lost")
    connector = Scripted([RUNNING, flaky], [succeeded()])
    run = run_task(workspace, "retry", spec(connector))
    assert run.ok and connector.count("create") == 2 and connector.count("delete") == 0
    assert [a.state for a in run.attempts] == ["failed", "landed"]
    assert [k.rsplit("/", 1)[1] for k in connector.keys if k] == ["0", "1"]
    assert "RETRYABLE_FAILED: node lost" in (run.attempts[0].message or "")


def test_retries_end_after_the_attempts(workspace: Workspace) -> None:
    flaky = Resource(phase=TaskExecution.RETRYABLE_FAILED, message="node lost")
    connector = Scripted([flaky])
    run = run_task(workspace, "retry", spec(connector, retry=RetrySpec(2, backoff_seconds=0)))
    assert run.status == "failed" and connector.count("create") == 2
    assert run.error == "the job ended RETRYABLE_FAILED: node lost (gave up after 2 attempts)"
    assert workspace.runs("retry")[0].error == run.error


@pytest.mark.parametrize("phase", [TaskExecution.FAILED, TaskExecution.ABORTED])
def test_a_permanent_failure_fails_the_run_with_the_connectors_message(
    workspace: Workspace, phase: TaskExecution
) -> None:
    connector = Scripted([RUNNING, Resource(phase=phase, message="quota exceeded")])
    run = run_task(workspace, "permanent", spec(connector))
    assert (run.status, run.phase) == ("failed", phase)
    assert run.error == f"the job ended {phase.name}: quota exceeded"
    assert connector.count("create") == 1 and connector.count("delete") == 0
    [failure] = workspace.failures(run.run_id)
    assert failure.message == run.error


def test_a_create_that_raises_is_retried(workspace: Workspace) -> None:
    connector = Scripted(create_errors=(ConnectionError("warehouse unreachable"),))
    run = run_task(workspace, "flaky", spec(connector))
    assert run.ok and [a.state for a in run.attempts] == ["failed", "landed"]
    message = run.attempts[0].message or ""
    assert "Scripted.create() raised ConnectionError: warehouse unreachable" in message
    assert "component 'flaky', run 1" in message


def test_a_create_that_raises_after_starting_the_job_is_found_by_recover(
    workspace: Workspace,
) -> None:
    connector = Recovering([succeeded()])
    run = run_task(workspace, "lost_answer", spec(connector))
    assert run.ok, run.error
    assert connector.calls == [("create", 1), ("recover", 0), ("get", 1)]


def test_get_errors_are_polled_through_then_the_job_is_given_up(workspace: Workspace) -> None:
    blips = Scripted([OSError("blip"), OSError("blip"), succeeded()])
    assert run_task(workspace, "blips", spec(blips)).ok
    assert blips.count("create") == 1

    broken = Scripted([OSError("down")], [succeeded()])
    poll = PollSpec(first_seconds=0.001, max_seconds=0.001, max_errors=2)
    run = run_task(workspace, "down", spec(broken, poll=poll))
    assert run.ok and broken.calls[:5] == [("create", 1)] + [("get", 1)] * 3 + [("delete", 1)]
    assert [a.state for a in run.attempts] == ["cancelled", "landed"]
    assert "get failed 3 times in a row; the job was cancelled" in (run.attempts[0].message or "")


def test_the_cancel_event_deletes_the_job(workspace: Workspace) -> None:
    connector = Scripted([RUNNING])
    cancel = threading.Event()

    def cancel_once_running() -> None:
        if connector.running.wait(10):
            cancel.set()

    helper = threading.Thread(target=cancel_once_running)
    helper.start()
    run = run_task(workspace, "cancelled", spec(connector), cancel=cancel)
    helper.join()
    assert run.status == "interrupted" and connector.count("delete") == 1
    assert run.error == "cancelled; the job was cancelled (delete)"
    assert [a.state for a in run.attempts] == ["cancelled"]
    assert workspace.runs("cancelled")[0].status == "interrupted"


def test_the_timeout_deletes_the_job_and_fails_the_run(workspace: Workspace) -> None:
    class Slow(Scripted):
        poll_spec = PollSpec(first_seconds=0.005, max_seconds=0.01, timeout_seconds=0.05)

    connector = Slow([RUNNING])
    run = run_task(workspace, "slow", spec(connector, poll=None))  # the connector's PollSpec
    assert run.status == "failed" and connector.count("delete") == 1
    assert run.error == (
        "timed out after 0.05 s (PollSpec.timeout_seconds); the job was cancelled (delete)"
    )
    assert connector.count("get") > 1


def test_ctrl_c_deletes_the_job_and_records_the_run_as_interrupted(workspace: Workspace) -> None:
    connector = Scripted([RUNNING, KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        run_task(workspace, "ctrl_c", spec(connector))
    assert connector.count("delete") == 1
    [record] = workspace.catalog.task_attempts(workspace.catalog.component("ctrl_c").id)
    assert record.state == "cancelled" and "interrupted (Ctrl-C)" in (record.message or "")
    assert workspace.runs("ctrl_c")[0].status == "interrupted"


def test_a_sync_connector_lands_what_do_returns(workspace: Workspace) -> None:
    class Echo(SyncConnector):
        name = "Echo"
        task_type_name = "echo"

        def do(self, task_template, output_prefix, inputs=None, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED, outputs=dict(inputs or {}))

    run = run_task(workspace, "echo", spec(Echo(), inputs={"a": 1, "b": "x"}, output=None))
    assert run.ok and workspace.read_arrow("echo").to_pylist() == [{"a": 1, "b": "x"}]


def _interrupted_create(ws: Workspace, connector: Any, name: str) -> str:
    """The catalog as a runner killed inside `create` leaves it: a write-ahead record."""
    record = ws.catalog.ensure_component(
        name, kind="task", source_ref="x", settings={}, code_version="v", now=ws.clock()
    )
    run_id = ws.catalog.start_run(record.id, executor="task", holder="gone", now=ws.clock())
    attempt = ws.catalog.start_task_attempt(
        record.id, run_id=run_id, attempt=1, idempotency_key=f"key-{name}",
        task_type=connector.task_type_name, task_type_version=0, holder=None, now=ws.clock(),
    )  # fmt: skip
    return attempt.idempotency_key


def test_recover_finding_no_job_closes_the_record_and_creates_one(workspace: Workspace) -> None:
    connector = Recovering([succeeded()])
    connector.started["something else"] = 1
    _interrupted_create(workspace, connector, "nothing_started")
    run = run_task(workspace, "nothing_started", spec(connector, retry=RetrySpec(1)))
    assert [(a.run_id, a.state) for a in run.attempts] == [(1, "not_started"), (2, "landed")]
    assert connector.calls == [("recover", 0), ("create", 2), ("recover", 0), ("get", 2)]


def test_an_unresolved_record_blocks_runs_until_reset(workspace: Workspace) -> None:
    connector = Scripted()
    key = _interrupted_create(workspace, connector, "unknown")
    run = run_task(workspace, "unknown", spec(connector))
    assert run.status == "failed" and connector.calls == []
    assert f"(idempotency key {key}) and stopped before recording" in (run.error or "")
    assert [a.state for a in run.attempts] == ["creating"]
    assert [a.idempotency_key for a in reset_task(workspace, "unknown")] == [key]
    assert reset_task(workspace, "unknown") == []
    assert run_task(workspace, "unknown", spec(connector)).ok


def test_a_changed_task_type_does_not_orphan_the_open_job(workspace: Workspace) -> None:
    _interrupted_create(workspace, Recovering(), "changed")
    run = run_task(workspace, "changed", spec(Scripted()))
    assert run.status == "failed"
    assert "open job of task type 'recovering' v0" in (run.error or "")


def test_spec_errors_come_before_anything_is_recorded(workspace: Workspace, tmp_path: Path) -> None:
    two = tmp_path / "two.py"
    two.write_text(
        "from headwater.tasks import SyncConnector\n"
        "class A(SyncConnector):\n    name = 'a'\n    task_type_name = 'a'\n"
        "    def do(self, task_template, output_prefix, inputs=None, **kw): ...\n"
        "class B(A):\n    task_type_name = 'b'\n"
        "class C(A):\n    task_type_name = 'c'\n"
    )
    with pytest.raises(SettingsError, match=r"defines 2 connectors \('b' v0, 'c' v0\)"):
        run_task(workspace, "two", TaskSpec(two))
    with pytest.raises(SettingsError, match="must be JSON"):
        TaskSpec(Scripted(), custom={"when": object()})
    assert workspace.components() == []
    workspace.catalog.ensure_component(
        "other", kind="processor", source_ref="x", settings={}, code_version="v",
        now=workspace.clock(),
    )  # fmt: skip
    with pytest.raises(SettingsError, match="only a task component"):
        reset_task(workspace, "other")


def test_poll_waits_grow_to_the_maximum() -> None:
    poll = PollSpec(first_seconds=1, max_seconds=5, factor=2)
    assert [poll.wait(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    with pytest.raises(SettingsError, match="factor"):
        PollSpec(factor=0.5)
    with pytest.raises(SettingsError, match="timeout_seconds must be positive"):
        PollSpec(timeout_seconds=0)

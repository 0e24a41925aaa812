"""A processor component against the real catalog: rows land as one partition per run with the
data checkpoint in the same transaction; failed, rejected and debug runs store nothing; reset
works; the CLI prints one JSON object. Every run goes through the real sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.errors import HeadwaterError
from headwater.processor.component import (
    ProcessorComponentError,
    ProcessorSpec,
    reset_checkpoint,
    run_processor,
)
from headwater.workspace import Workspace

COUNTER = """
start = DATA_CHECKPOINT or 0
log.info(f"from {start}")
return [{"n": i, "seen": DATA_CHECKPOINT} for i in range(start + 1, start + 3)]
"""
COUNTER_SCHEMA = {"n": "int", "seen": "int?"}


def counter(**changes: Any) -> ProcessorSpec:
    values: dict[str, Any] = {
        "statement": COUNTER,
        "schema": COUNTER_SCHEMA,
        "processing": "bulk",
        "checkpoint_column": "n",
    }
    values.update(changes)
    return ProcessorSpec(**values)


def stored(workspace: Workspace, name: str) -> list[dict[str, Any]]:
    return workspace.read_arrow(name).sort_by("n").to_pylist()


def test_each_run_lands_a_partition_and_moves_the_checkpoint(workspace: Workspace) -> None:
    first = run_processor(workspace, "counter", counter())
    second = run_processor(workspace, "counter", counter())
    assert (first.ok, first.partition, first.checkpoint_before) == (True, "000000000001", None)
    assert (second.partition, second.checkpoint_before, second.result.checkpoint) == (
        "000000000002",
        2,
        4,
    )
    assert stored(workspace, "counter") == [
        {"n": 1, "seen": None},
        {"n": 2, "seen": None},
        {"n": 3, "seen": 2},
        {"n": 4, "seen": 2},
    ]
    runs = workspace.runs("counter")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]


@pytest.mark.parametrize(
    "statement, verdict, in_error",
    [
        ('log.error("upstream is broken")\nreturn [{"n": 9, "seen": None}]', "failed", "broken"),
        ('return [{"n": "nine", "seen": None}]', "failed", "'n'"),
        ('x: int = 1\nreturn [{"n": x, "seen": None}]', "rejected", "line 1"),
    ],
    ids=["log-error", "wrong-type", "type-hint"],
)
def test_a_run_that_does_not_succeed_stores_nothing(
    workspace: Workspace, statement: str, verdict: str, in_error: str
) -> None:
    run_processor(workspace, "counter", counter())
    done = run_processor(workspace, "counter", counter(statement=statement))
    assert done.result.verdict == verdict
    assert in_error in (done.result.error or "")
    assert done.partition is None
    assert len(workspace.partitions("counter")) == 1
    after = run_processor(workspace, "counter", counter())
    assert after.checkpoint_before == 2, "the failed run moved the checkpoint"
    last = workspace.runs("counter")[1]
    assert last.status == "failed" and in_error in (last.error or "")


def test_a_debug_run_goes_through_the_sandbox_and_stores_nothing(workspace: Workspace) -> None:
    run_processor(workspace, "counter", counter())
    debug = run_processor(workspace, "counter", counter(), debug=True)
    assert debug.result.verdict == "ok" and debug.run_id is None
    assert [r["n"] for r in debug.result.rows] == [3, 4]
    assert len(workspace.partitions("counter")) == 1
    assert len(workspace.runs("counter")) == 1
    assert run_processor(workspace, "counter", counter()).checkpoint_before == 2


def test_reset_hands_none_to_the_next_run_and_keeps_the_partitions(workspace: Workspace) -> None:
    run_processor(workspace, "counter", counter())
    assert reset_checkpoint(workspace, "counter") == 2
    again = run_processor(workspace, "counter", counter())
    assert again.checkpoint_before is None
    assert again.partition == "000000000002", "partition names must stay unique after a reset"
    assert [r["n"] for r in stored(workspace, "counter")] == [1, 1, 2, 2]


def test_input_from_an_upstream_component(
    workspace: Workspace, write_connector: Callable[..., Path]
) -> None:
    source = write_connector(
        """
import datetime
def context(credentials):
    return None
def list_objects(context, metadata):
    yield {"name": "day1", "fingerprint": "1", "is_prefix": False}
def read_records(context, metadata):
    yield {"id": 1, "at": datetime.datetime(2026, 1, 2, 3, 4, 5), "blob": b"\\xffx"}
    yield {"id": 2, "at": None, "blob": None}
""",
        name="orders",
    )
    workspace.refresh(source).raise_for_status()
    spec = ProcessorSpec(
        "import json\nreturn [{'id': r['id'], 'text': json.dumps(r)} for r in INPUT_DATA]",
        {"id": "int", "text": "string"},
        "bulk",
        input_component="orders",
    )
    done = run_processor(workspace, "copied", spec)
    assert done.ok, done.result.error
    by_id = {r["id"]: json.loads(r["text"]) for r in done.result.rows}
    assert by_id[1] == {"id": 1, "at": "2026-01-02T03:04:05", "blob": "\\xffx"}
    assert by_id[2] == {"id": 2, "at": None, "blob": None}


def test_bad_declarations_are_refused_before_anything_runs(workspace: Workspace) -> None:
    with pytest.raises(ProcessorComponentError, match="not both"):
        counter(input_component="orders", input_rows=[{"a": 1}])
    with pytest.raises(HeadwaterError, match="decimal"):
        counter(schema={"n": "decimal"})
    with pytest.raises(HeadwaterError, match="missing"):
        run_processor(workspace, "counter", counter(input_component="missing"))
    assert workspace.components() == [] or all(c.name != "missing" for c in workspace.components())


def test_reset_refuses_a_component_of_another_kind(
    workspace: Workspace, write_connector: Callable[..., Path]
) -> None:
    source = write_connector(
        """
def context(credentials):
    return None
def list_objects(context, metadata):
    yield {"name": "a", "fingerprint": "1", "is_prefix": False}
def read_records(context, metadata):
    yield {"x": 1}
""",
        name="plain",
    )
    workspace.refresh(source).raise_for_status()
    with pytest.raises(ProcessorComponentError, match="only a processor"):
        reset_checkpoint(workspace, "plain")


def test_a_kill_inside_the_commit_leaves_neither_rows_nor_checkpoint(tmp_path: Path) -> None:
    """SIGKILL inside the catalog transaction that lands the rows and the checkpoint: after it,
    neither is there, and the next run starts from the old checkpoint."""
    home = tmp_path / "home"
    statement = tmp_path / "counter.py"
    statement.write_text(COUNTER)
    command = [
        sys.executable,
        "-m",
        "headwater",
        "--home",
        str(home),
        "processor",
        "refresh",
        str(statement),
        "-c",
        "counter",
        "--schema",
        json.dumps(COUNTER_SCHEMA),
        "--processing",
        "bulk",
        "--checkpoint-column",
        "n",
        "--json",
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    env = {**os.environ, "HEADWATER_FAILPOINT": "catalog.in_commit:1"}
    killed = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr.decode()
    with Workspace(home=home) as ws:
        assert len(ws.partitions("counter")) == 1
    after = subprocess.run(command, capture_output=True, timeout=120, text=True)
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    assert report["checkpoint_before"] == 2 and report["checkpoint"] == 4
    with Workspace(home=home) as ws:
        assert [r["n"] for r in stored(ws, "counter")] == [1, 2, 3, 4]


runner = CliRunner()


def test_cli_run_prints_one_json_object(tmp_path: Path) -> None:
    statement = tmp_path / "add.py"
    statement.write_text("return [{'id': INPUT_DATA[0]['id'] + 1}]")
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"id": 1}, {"id": 41}]))
    result = runner.invoke(
        app,
        [
            "processor",
            "run",
            str(statement),
            "--schema",
            '{"id": "int"}',
            "--input",
            str(rows),
            "--checkpoint",
            "7",
            "--checkpoint-column",
            "id",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "ok"
    assert report["rows"] == [{"id": 2}, {"id": 42}]
    assert report["checkpoint"] == 42
    assert {"logs", "error"} <= set(report)


@pytest.mark.parametrize(
    "statement, verdict",
    [("return [{'id': 'x'}]", "failed"), ("import os\nreturn []", "rejected")],
)
def test_cli_run_exits_1_unless_ok(tmp_path: Path, statement: str, verdict: str) -> None:
    path = tmp_path / "s.py"
    path.write_text(statement)
    result = runner.invoke(
        app,
        [
            "processor",
            "run",
            str(path),
            "--schema",
            '{"id": "int"}',
            "--processing",
            "bulk",
            "--json",
        ],
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["verdict"] == verdict


def test_cli_names_a_bad_json_argument(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("return []")
    result = runner.invoke(app, ["processor", "run", str(path), "--schema", "{id: int}"])
    assert result.exit_code == 2
    assert "--schema is not JSON" in result.output

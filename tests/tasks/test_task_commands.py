"""`headwater task ...` (the sub-app headwater/cli.py mounts as `task`): help with examples,
one JSON object per run, exit codes, and bad arguments as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headwater.tasks.commands import app

runner = CliRunner()
FILE_JOBS = Path(__file__).parent / "file_jobs.py"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FILE_JOBS_DIR", str(tmp_path))
    return tmp_path / "home"


@pytest.mark.parametrize("name", ["run", "attempts", "reset"])
def test_every_task_command_has_help_with_an_example(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: headwater task " + name in result.stdout


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["run", str(FILE_JOBS), "-c", "jobs", "--poll-first", "0.001", *args]
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_run_prints_one_json_object_and_the_attempts_list_it(home: Path) -> None:
    code, out, err = run(
        "--task-type", "file_job", "--inputs", '{"n": 2}', "--output", "rows", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert (report["status"], report["rows"], report["phase"]) == ("succeeded", 2, "SUCCEEDED")
    [attempt] = report["attempts"]
    assert attempt["state"] == "landed"
    listed = runner.invoke(app, ["attempts", "jobs"])
    assert listed.stdout.startswith("run 1 attempt 1: landed  headwater/jobs/")
    assert runner.invoke(app, ["reset", "jobs"]).stdout == "nothing to reset: no open attempts\n"


def test_a_failed_run_exits_1_with_the_reason(home: Path) -> None:
    code, out, _ = run("--task-type", "file_job", "--output", "nope")
    assert code == 1
    assert "error: the job succeeded, but the job has no output named 'nope'" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--inputs", "{nope"], "--inputs is not JSON"),
        (["--inputs", "[1]"], "--inputs must be a JSON object, not list"),
        (["--task-type", "missing"], "no connector for task type 'missing' version 0"),
        ([], "defines 2 connectors"),
    ],
    ids=["not-json", "not-object", "unknown-type", "ambiguous"],
)
def test_bad_arguments_are_one_line(home: Path, args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code in (1, 2) and message in " ".join((out + err).split())

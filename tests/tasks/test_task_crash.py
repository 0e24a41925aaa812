"""SIGKILL a task run at each point between the external system and the catalog; the next run
never starts the job twice and lands it once.

The runner is `python -m headwater.tasks.commands run ...` in a subprocess, killed by a
failpoint (HEADWATER_FAILPOINT); the jobs live in a folder (tests/tasks/file_jobs.py), so they
outlive it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headwater.workspace import Workspace

FILE_JOBS = Path(__file__).parent / "file_jobs.py"


class Runner:
    """Task runs of component `jobs` in subprocesses, on one home and one jobs folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.jobs = tmp_path / "jobs"
        self.jobs.mkdir()

    def env(self, failpoint: str | None = None) -> dict[str, str]:
        env = {**os.environ, "HEADWATER_HOME": str(self.home), "FILE_JOBS_DIR": str(self.jobs)}
        env.pop("HEADWATER_FAILPOINT", None)
        if failpoint:
            env["HEADWATER_FAILPOINT"] = failpoint
        return env

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "headwater.tasks.commands", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def run(self, task_type: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
        args = [
            "run", str(FILE_JOBS), "-c", "jobs", "--task-type", task_type,
            "--inputs", '{"n": 3}', "--output", "rows",
            "--poll-first", "0.01", "--poll-max", "0.05", "--json",
        ]  # fmt: skip
        return subprocess.run(
            [sys.executable, "-m", "headwater.tasks.commands", *args],
            env=self.env(failpoint),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def creates(self) -> list[str]:
        log = self.jobs / "creates.log"
        return log.read_text().splitlines() if log.exists() else []

    def attempts(self) -> list[Any]:
        with Workspace(home=self.home) as ws:
            return ws.catalog.task_attempts(ws.catalog.component("jobs").id)

    def landed(self) -> list[dict[str, Any]]:
        with Workspace(home=self.home) as ws:
            if not ws.partitions("jobs"):
                return []
            return ws.read_arrow("jobs").to_pylist()

    def statuses(self) -> list[str]:
        with Workspace(home=self.home) as ws:
            return [r.status for r in reversed(ws.runs("jobs"))]


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def killed(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == -9, f"not killed ({done.returncode}): {done.stderr}"


def test_killed_after_create_the_next_run_recovers_the_job_instead_of_creating(
    runner: Runner,
) -> None:
    killed(runner.run("file_job", "task.after_create:1"))
    [attempt] = runner.attempts()
    assert (attempt.state, attempt.resource_meta) == ("creating", None)
    assert runner.creates() == [attempt.idempotency_key]

    done = runner.run("file_job")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    assert (report["partition"], report["rows"]) == ("000000000001", 3)
    assert runner.creates() == [attempt.idempotency_key], "the job was created twice"
    [resolved] = runner.attempts()
    assert resolved.state == "landed" and resolved.resource_meta is not None
    assert runner.statuses() == ["abandoned", "succeeded"]
    assert len({row["job"] for row in runner.landed()}) == 1


def test_killed_after_create_without_recover_the_next_run_fails_until_reset(
    runner: Runner,
) -> None:
    killed(runner.run("file_job_plain", "task.after_create:1"))
    blocked = runner.run("file_job_plain")
    assert blocked.returncode == 1
    error = json.loads(blocked.stdout)["error"]
    assert "stopped before recording what it started" in error
    assert "headwater task reset jobs" in error and "recover(idempotency_key)" in error
    assert len(runner.creates()) == 1, "a job of unknown fate was created again"
    assert [a.state for a in runner.attempts()] == ["creating"]

    listed = runner.command("attempts", "jobs", "--json")
    assert json.loads(listed.stdout)[0]["idempotency_key"] == runner.creates()[0]
    reset = runner.command("reset", "jobs")
    assert reset.returncode == 0 and "reset run 1 attempt 1" in reset.stdout, reset.stderr

    after = runner.run("file_job_plain")
    assert after.returncode == 0, after.stderr
    assert len(runner.creates()) == 2  # the operator decided: a new job
    assert [a.state for a in runner.attempts()] == ["reset", "landed"]
    assert runner.statuses() == ["abandoned", "failed", "succeeded"]


@pytest.mark.parametrize(
    "failpoint", ["task.before_land:1", "catalog.in_commit:1"], ids=["before-land", "in-commit"]
)
def test_killed_after_recording_the_next_run_resumes_the_same_job_and_lands_once(
    runner: Runner, failpoint: str
) -> None:
    killed(runner.run("file_job", failpoint))
    [attempt] = runner.attempts()
    assert attempt.state == "running" and attempt.resource_meta is not None
    assert runner.landed() == []

    done = runner.run("file_job")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["partition"] == "000000000001"
    assert len(runner.creates()) == 1, "the job was created twice"
    job_id = json.loads(attempt.resource_meta)["job_id"]
    assert runner.landed() == [{"i": i, "job": job_id} for i in range(3)]
    assert [a.state for a in runner.attempts()] == ["landed"]

    again = runner.run("file_job")  # a new run is a new job, landed as the next partition
    assert json.loads(again.stdout)["partition"] == "000000000002"
    assert len(runner.creates()) == 2

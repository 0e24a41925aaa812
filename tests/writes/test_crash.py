"""A write killed (SIGKILL) at its worst moments, then run again: every partition ends up in
the target exactly once. The kill happens in a real subprocess, at a failpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from headwater import Workspace
from headwater.writes import WriteSpec, run_write
from headwater.writes.files import file_name
from tests.writes.conftest import PG_URL, Upstream

PROGRAM = """
import json, sys
from headwater import Workspace
from headwater.writes import WriteSpec, run_write

with Workspace(home=sys.argv[1]) as ws:
    run_write(ws, "out", WriteSpec("up", json.loads(sys.argv[2])))
"""

PARTITIONS = {
    f"p{i}": [{"id": i * 10 + j, "v": f"row {i}.{j}"} for j in range(3)] for i in range(4)
}


def killed_write(home: Path, target: dict[str, Any], failpoint: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_FAILPOINT"] = failpoint
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(home), json.dumps(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


@pytest.mark.parametrize("failpoint", ["write.files_before_rename:2", "write.after_target:3"])
def test_files_after_a_kill(
    workspace: Workspace, upstream: Upstream, tmp_path: Path, failpoint: str
) -> None:
    out = tmp_path / "out"
    target = {"files": {"path": str(out)}}
    upstream.land(PARTITIONS)

    killed_write(tmp_path / "home", target, failpoint)
    run = run_write(workspace, "out", WriteSpec("up", target))

    assert run.status == "succeeded"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        file_name(n, "parquet") for n in PARTITIONS
    ), "every file, and no temporary one"
    for name, rows in PARTITIONS.items():
        assert pq.read_table(out / file_name(name, "parquet")).to_pylist() == rows
    statuses = [r.status for r in workspace.runs("out")]
    assert statuses == ["succeeded", "abandoned"]


@pytest.mark.parametrize("mode", ["append", "upsert"])
@pytest.mark.parametrize("failpoint", ["write.postgres_in_transaction:2", "write.after_target:2"])
def test_postgres_after_a_kill_holds_every_row_once(
    workspace: Workspace,
    upstream: Upstream,
    pg: psycopg.Connection[Any],
    table: str,
    tmp_path: Path,
    mode: str,
    failpoint: str,
) -> None:
    key = ["id"] if mode == "upsert" else []
    target = {"postgres": {"table": table, "mode": mode, "key": key, "url": PG_URL}}
    upstream.land(PARTITIONS)

    killed_write(tmp_path / "home", target, failpoint)
    run = run_write(workspace, "out", WriteSpec("up", target))

    assert run.status == "succeeded"
    written_before = 2 if failpoint.startswith("write.after_target") else 1
    assert run.written == len(PARTITIONS) - written_before, "what was committed is not redone"
    got = pg.execute(f'SELECT id, v FROM "{table}" ORDER BY id').fetchall()
    expected = sorted((r["id"], r["v"]) for rows in PARTITIONS.values() for r in rows)
    assert got == expected

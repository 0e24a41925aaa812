"""A files target that moves (its path, format or input changes): the files written at the
previous place are deleted, each logged, but those the new target writes over; a previous
place that cannot be reached is named in a warning and the run goes on."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import psycopg
import pytest

from headwater import Workspace
from headwater.writes import WriteSpec, run_write
from headwater.writes.files import file_name
from tests.writes.conftest import PG_URL, Upstream

ROWS = {"a": [{"id": 1}], "b": [{"id": 2}]}


def files_spec(path: str, fmt: str = "parquet", input: str = "up") -> WriteSpec:
    return WriteSpec(input, {"files": {"path": path, "format": fmt}})


def listing(path: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(path)
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"memory://moved-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    for path in (f"{root}/old", f"{root}/new"):
        if fs.exists(path):
            fs.rm(path, recursive=True)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_new_path_deletes_the_files_at_the_old_one(
    workspace: Workspace, upstream: Upstream, tmp_path: Path, memory_root: str, where: str
) -> None:
    base = str(tmp_path) if where == "local" else memory_root
    old, new = f"{base}/old", f"{base}/new"
    upstream.land(ROWS)
    run_write(workspace, "out", files_spec(old))
    lines: list[str] = []

    run = run_write(workspace, "out", files_spec(new), log=lines.append)

    assert (run.status, run.written) == ("succeeded", 2)
    assert listing(old) == []
    assert listing(new) == sorted(file_name(n, "parquet") for n in ROWS)
    _, root = fsspec.core.url_to_fs(old)
    for name in ROWS:
        assert (
            f"deleted {root}/{file_name(name, 'parquet')}: partition '{name}' at the previous "
            f"target, files at {old} (parquet)"
        ) in lines


def test_a_new_input_at_the_same_place_deletes_only_what_it_does_not_write_over(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    upstream.land(ROWS)
    run_write(workspace, "out", files_spec(out))
    other = Upstream(workspace, "other")
    other.land({"a": [{"id": 10}], "c": [{"id": 30}]})
    lines: list[str] = []

    run = run_write(workspace, "out", files_spec(out, input="other"), log=lines.append)

    assert (run.status, run.written) == ("succeeded", 2)
    assert listing(out) == sorted(file_name(n, "parquet") for n in ("a", "c"))
    deleted = [line for line in lines if line.startswith("deleted ")]
    assert len(deleted) == 1 and "partition 'b'" in deleted[0], "a is written over, not deleted"


def test_an_unreachable_previous_place_is_named_in_a_warning_and_the_run_goes_on(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    old = tmp_path / "gone" / "out"
    upstream.land(ROWS)
    run_write(workspace, "out", files_spec(str(old)))
    shutil.rmtree(tmp_path / "gone")
    (tmp_path / "gone").write_text("a file where the folder was")
    lines: list[str] = []

    run = run_write(workspace, "out", files_spec(str(tmp_path / "new")), log=lines.append)

    assert (run.status, run.written) == ("succeeded", 2)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1, lines
    assert f"cannot delete {old}/{file_name('a', 'parquet')}" in warnings[0]
    assert f"files at {old} (parquet)" in warnings[0]


def test_a_previous_place_not_recorded_is_left_with_a_warning(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    upstream.land(ROWS)
    run_write(workspace, "out", files_spec(str(old)))
    record = workspace.catalog.component("out")
    workspace.catalog.update_component(  # as an older Headwater recorded it
        record.id,
        source_ref="files",
        settings={"input": "up", "target": "files"},
        code_version=record.code_version,
        now=workspace.clock(),
    )
    lines: list[str] = []

    run = run_write(workspace, "out", files_spec(str(tmp_path / "new")), log=lines.append)

    assert run.status == "succeeded"
    assert "warning: where the previous files target wrote was not recorded" in " ".join(lines)
    assert len(listing(str(old))) == 2


@pytest.mark.postgres
def test_moving_from_files_to_a_table_deletes_the_files(
    workspace: Workspace,
    upstream: Upstream,
    tmp_path: Path,
    pg: psycopg.Connection[Any],
    table: str,
) -> None:
    out = str(tmp_path / "out")
    upstream.land(ROWS)
    run_write(workspace, "out", files_spec(out))

    spec = WriteSpec("up", {"postgres": {"table": table, "url": PG_URL}})
    run = run_write(workspace, "out", spec)

    assert (run.status, run.written) == ("succeeded", 2)
    assert listing(out) == []
    assert pg.execute(f'SELECT id FROM "{table}" ORDER BY id').fetchall() == [(1,), (2,)]

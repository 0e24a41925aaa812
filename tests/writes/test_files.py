"""The files target, on a local folder and on fsspec's memory filesystem: one file per upstream
partition, only what changed rewritten, removed partitions' files deleted."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from headwater import Workspace
from headwater.catalog.marks import read_marks
from headwater.writes import WriteError, WriteSpec, run_write
from headwater.writes.files import file_name
from tests.writes.conftest import Upstream

ROWS = {
    "2024/01": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "2024/02": [{"id": 3, "name": "c"}],
    "notes": [{"id": 4, "name": "d"}],
}


def files_spec(path: str, fmt: str = "parquet") -> WriteSpec:
    return WriteSpec("up", {"files": {"path": path, "format": fmt}})


def read_file(fs: fsspec.AbstractFileSystem, path: str, fmt: str) -> list[dict[str, object]]:
    with fs.open(path, "rb") as handle:
        table = pq.read_table(handle) if fmt == "parquet" else pacsv.read_csv(handle)
    return table.to_pylist()


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"memory://writes-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("where", ["local", "memory"])
def test_one_file_per_partition_then_only_what_changed(
    workspace: Workspace,
    upstream: Upstream,
    tmp_path: Path,
    memory_root: str,
    where: str,
    fmt: str,
) -> None:
    root = str(tmp_path / "out") if where == "local" else memory_root
    fs, base = fsspec.core.url_to_fs(root)
    upstream.land(ROWS)
    lines: list[str] = []

    first = run_write(workspace, "out", files_spec(root, fmt), log=lines.append)

    assert (first.status, first.written, first.removed, first.rows) == ("succeeded", 3, 0, 4)
    assert "plan: 3 to write (3 new, 0 changed), 0 to remove, 0 unchanged" in lines
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(base, detail=False))
    assert names == sorted(file_name(n, fmt) for n in ROWS)
    for name, rows in ROWS.items():
        assert read_file(fs, f"{base}/{file_name(name, fmt)}", fmt) == rows

    def state(name: str) -> tuple[str, object]:
        path = f"{base}/{file_name(name, fmt)}"
        info = fs.info(path)
        with fs.open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        # The local inode, or the memory filesystem's creation time: a rewrite changes it.
        return digest, info.get("ino", info.get("created"))

    before = {name: state(name) for name in ROWS}
    marks_before = read_marks(workspace.catalog, workspace.catalog.component("out").id)

    upstream.land({"2024/02": [{"id": 3, "name": "C"}, {"id": 5, "name": "e"}]})
    upstream.remove("notes")
    lines.clear()
    second = run_write(workspace, "out", files_spec(root, fmt), log=lines.append)

    assert (second.status, second.written, second.removed, second.unchanged) == (
        "succeeded",
        1,
        1,
        1,
    )
    assert "plan: 1 to write (0 new, 1 changed), 1 to remove, 1 unchanged" in lines
    assert state("2024/01") == before["2024/01"], "an unchanged partition's file is untouched"
    assert state("2024/02") != before["2024/02"]
    assert read_file(fs, f"{base}/{file_name('2024/02', fmt)}", fmt) == [
        {"id": 3, "name": "C"},
        {"id": 5, "name": "e"},
    ]
    assert not fs.exists(f"{base}/{file_name('notes', fmt)}"), "removed upstream: deleted"
    marks = read_marks(workspace.catalog, workspace.catalog.component("out").id)
    assert sorted(marks) == ["2024/01", "2024/02"]
    assert marks["2024/01"] == marks_before["2024/01"]
    assert marks["2024/02"].fingerprint.startswith("2024/02-2@")
    assert marks["2024/02"].run_id == second.run_id

    third = run_write(workspace, "out", files_spec(root, fmt))
    assert (third.written, third.removed, third.unchanged) == (0, 0, 2)
    assert workspace.run(third.run_id).status == "succeeded"


def test_file_names_are_readable_and_never_shared() -> None:
    assert file_name("2024/01/sales.csv", "csv").startswith("2024_01_sales.csv-")
    assert file_name("..hidden", "parquet").startswith("hidden-")
    assert file_name("///", "parquet").startswith("partition-")
    assert len(file_name("x" * 500, "parquet")) < 100
    lookalikes = ["a/b", "a b", "a_b", "A_b", "a?b", "", "_", "."]
    names = {file_name(n, "parquet").casefold() for n in lookalikes}
    assert len(names) == len(lookalikes)


def test_a_file_deleted_by_hand_is_written_again(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    upstream.land(ROWS)
    run_write(workspace, "out", files_spec(str(out)))
    (out / file_name("notes", "parquet")).unlink()
    lines: list[str] = []

    again = run_write(workspace, "out", files_spec(str(out)), log=lines.append)

    assert (again.written, again.unchanged) == (1, 2)
    assert pq.read_table(out / file_name("notes", "parquet")).to_pylist() == ROWS["notes"]
    assert any("not in the target" in line for line in lines)


def test_no_partial_files_are_left_and_crash_leftovers_are_swept(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    leftover = out / ".headwater-out-0123.tmp"  # as a killed run leaves it
    leftover.write_bytes(b"half a file")
    other = out / ".headwater-someone_else-0123.tmp"  # another component's, maybe running
    other.write_bytes(b"not ours")
    upstream.land(ROWS)

    run_write(workspace, "out", files_spec(str(out)))

    assert not leftover.exists()
    assert other.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [other.name, *(file_name(n, "parquet") for n in ROWS)]
    )


def test_nested_and_binary_columns_become_text_in_csv(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    table = pa.table(
        {
            "tags": pa.array([["x", "y"], None]),
            "point": pa.array([{"x": 1, "y": 2}, {"x": 3, "y": None}]),
            "raw": pa.array([b"ok", b"\xff"]),
        }
    )
    upstream.land({"p": table})

    run = run_write(workspace, "out", files_spec(str(tmp_path / "out"), "csv"))

    assert run.status == "succeeded"
    text = (tmp_path / "out" / file_name("p", "csv")).read_text()
    assert text.splitlines() == [
        '"tags","point","raw"',
        '"[""x"", ""y""]","{""x"": 1, ""y"": 2}","ok"',
        ',"{""x"": 3, ""y"": null}","\\xff"',
    ]


def test_changing_the_format_writes_every_partition_again(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    out = str(tmp_path / "out")
    upstream.land(ROWS)
    run_write(workspace, "out", files_spec(out, "parquet"))
    lines: list[str] = []

    as_csv = run_write(workspace, "out", files_spec(out, "csv"), log=lines.append)

    assert (as_csv.written, as_csv.unchanged) == (3, 0)
    assert lines[0].startswith("the input or the target changed")
    assert (tmp_path / "out" / file_name("notes", "csv")).exists()


def test_an_upstream_without_partitions_writes_nothing(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    lines: list[str] = []

    run = run_write(workspace, "out", files_spec(str(tmp_path / "out")), log=lines.append)

    assert (run.status, run.written, run.error) == ("succeeded", 0, None)
    assert lines == ["nothing to write: 'up' has no partitions yet"]
    assert not (tmp_path / "out").exists()


def test_a_missing_upstream_fails_the_run_naming_it(workspace: Workspace, tmp_path: Path) -> None:
    run = run_write(workspace, "out", WriteSpec("nope", {"files": {"path": str(tmp_path)}}))

    assert run.status == "failed"
    assert run.error is not None and "no component named 'nope'" in run.error
    assert workspace.run(run.run_id).error == run.error


def test_a_target_that_cannot_be_written_fails_naming_the_partition(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.land({"only": ROWS["notes"]})
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / file_name("only", "parquet")).mkdir()  # a folder where the file must go

    run = run_write(workspace, "out", files_spec(str(blocked)))

    assert run.status == "failed"
    assert run.failures[0].partition == "only"
    assert run.error is not None
    assert "write connector 'out'" in run.error and "partition 'only'" in run.error
    assert read_marks(workspace.catalog, workspace.catalog.component("out").id) == {}
    assert [p.name for p in blocked.iterdir()] == [file_name("only", "parquet")], "no temp left"


def test_an_unknown_filesystem_fails_the_run_with_the_fix(
    workspace: Workspace, upstream: Upstream
) -> None:
    upstream.land({"only": ROWS["notes"]})

    run = run_write(workspace, "out", files_spec("nosuchfs://bucket/out"))

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.startswith("write connector 'out': cannot use path 'nosuchfs://bucket/out'")
    assert "fsspec URL whose filesystem is installed" in run.error


def test_invalid_declarations_are_refused_before_any_run(
    workspace: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(WriteError, match="exactly one of files, postgres, python"):
        run_write(workspace, "out", WriteSpec("up", {"files": {"path": "x"}, "python": {}}))
    with pytest.raises(WriteError, match=r"files target is invalid: format"):
        run_write(workspace, "out", WriteSpec("up", {"files": {"path": "x", "format": "xls"}}))
    assert workspace.components() == []


def test_a_cancelled_run_stops_before_writing(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.land(ROWS)
    cancel = threading.Event()
    cancel.set()

    run = run_write(workspace, "out", files_spec(str(tmp_path / "out")), cancel=cancel)

    assert (run.status, run.written) == ("interrupted", 0)
    assert workspace.run(run.run_id).status == "interrupted"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_refreshed_connector_is_written_as_it_changes(
    workspace: Workspace, write_connector: Callable[..., Path], tmp_path: Path
) -> None:
    """End to end: a real partitioned connector refreshed, its files written, its source
    changed and refreshed again, and only the difference written."""
    listing = tmp_path / "objects.txt"
    listing.write_text("a=1\nb=1\n")
    connector = write_connector(
        f"""
        import pathlib

        import pandas as pd

        def list_objects(context, metadata):
            for line in pathlib.Path({str(listing)!r}).read_text().split():
                name, version = line.split("=")
                yield {{"name": name, "fingerprint": version, "is_prefix": False}}

        def read_pandas_dataframe(context, metadata):
            return pd.DataFrame({{"name": [metadata["name"]], "fp": [metadata["fingerprint"]]}})
        """
    )
    out = tmp_path / "out"
    spec = WriteSpec("conn", {"files": {"path": str(out)}})
    workspace.refresh(connector).raise_for_status()
    assert run_write(workspace, "out", spec).written == 2
    mtime_a = os.stat(out / file_name("a", "parquet")).st_mtime_ns

    listing.write_text("a=1\nb=2\nc=1\n")
    workspace.refresh(connector).raise_for_status()
    run = run_write(workspace, "out", spec)

    assert (run.written, run.unchanged) == (2, 1)
    assert os.stat(out / file_name("a", "parquet")).st_mtime_ns == mtime_a
    assert pq.read_table(out / file_name("b", "parquet")).to_pylist() == [{"name": "b", "fp": "2"}]

"""Custom Python writes: `write()` gets only what changed and the arguments it declares; a
failing write records nothing and names the component; the credential never shows."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from headwater import Workspace
from headwater.catalog.marks import read_marks
from headwater.writes import WriteSpec, run_write
from tests.writes.conftest import Upstream

# Records every call in a new JSON file under output_directory.
RECORDING = """
import json

def write(filesystem, spark, data_provider, output_directory, credentials):
    calls = len(filesystem.ls(output_directory))
    seen = {
        "partitions": [
            [p.name, p.fingerprint, p.to_arrow().num_rows, len(p.to_pandas())]
            for p in data_provider.partitions()
        ],
        "removed": data_provider.removed(),
        "schema": data_provider.schema().names,
        "rows": data_provider.data().to_pylist(),
        "filesystem": type(filesystem).__name__,
        "output_directory": output_directory,
        "credentials": credentials,
        "spark": spark,
    }
    with filesystem.open(f"{output_directory}/call-{calls}.json", "w") as f:
        json.dump(seen, f)
"""


@pytest.fixture
def out_dir() -> Iterator[str]:
    root = f"memory://python-writes-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def python_spec(code: str, output_directory: str | None = None) -> WriteSpec:
    target: dict[str, Any] = {"code": textwrap.dedent(code)}
    if output_directory is not None:
        target["output_directory"] = output_directory
    return WriteSpec("up", {"python": target})


def calls(out_dir: str) -> list[dict[str, Any]]:
    fs, root = fsspec.core.url_to_fs(out_dir)
    found = sorted(fs.ls(root, detail=False))
    return [json.loads(fs.cat_file(path)) for path in found]


def test_write_gets_only_what_changed_and_every_argument(
    workspace: Workspace, upstream: Upstream, out_dir: str
) -> None:
    upstream.land({"a": [{"id": 1}], "b": [{"id": 2}, {"id": 3}]})
    spec = python_spec(RECORDING, out_dir)

    first = run_write(workspace, "out", spec, credential="tok")

    assert (first.status, first.written, first.rows) == ("succeeded", 2, 3)
    (call,) = calls(out_dir)
    assert call == {
        "partitions": [["a", "a-1", 1, 1], ["b", "b-1", 2, 2]],
        "removed": [],
        "schema": ["id"],
        "rows": [{"id": 1}, {"id": 2}, {"id": 3}],
        "filesystem": "MemoryFileSystem",
        "output_directory": out_dir,
        "credentials": "tok",
        "spark": None,
    }

    unchanged = run_write(workspace, "out", spec, credential="tok")
    assert (unchanged.written, unchanged.unchanged) == (0, 2)
    assert len(calls(out_dir)) == 1, "nothing changed: write() is not called"

    upstream.land({"b": [{"id": 4}], "c": [{"id": 5}]})
    upstream.remove("a")
    third = run_write(workspace, "out", spec, credential="tok")

    assert (third.written, third.removed, third.unchanged) == (2, 1, 0)
    last = calls(out_dir)[-1]
    assert last["partitions"] == [["b", "b-2", 1, 1], ["c", "c-2", 1, 1]]
    assert last["removed"] == ["a"]
    assert last["rows"] == [{"id": 4}, {"id": 5}]
    marks = read_marks(workspace.catalog, workspace.catalog.component("out").id)
    assert sorted(marks) == ["b", "c"]


def test_write_gets_only_the_arguments_it_declares(
    workspace: Workspace, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.land({"a": [{"id": 1}]})
    record = tmp_path / "seen.json"
    code = f"""
    import json, pathlib

    def write(data_provider, output_directory=None):
        names = [p.name for p in data_provider.partitions()]
        pathlib.Path({str(record)!r}).write_text(json.dumps([names, output_directory]))
    """

    run = run_write(workspace, "out", python_spec(code))

    assert run.status == "succeeded", run.error
    assert json.loads(record.read_text()) == [["a"], None]


def test_a_failing_write_records_nothing_and_names_the_component(
    workspace: Workspace, upstream: Upstream
) -> None:
    secret = "tok-9f8e7d6c5b"
    upstream.land({"a": [{"id": 1}], "b": [{"id": 2}]})
    code = """
    def write(data_provider, credentials):
        for p in data_provider.partitions():
            p.to_arrow()
        raise RuntimeError(f"the bucket refused token {credentials}")
    """
    lines: list[str] = []

    run = run_write(workspace, "out", python_spec(code), credential=secret, log=lines.append)

    assert (run.status, run.written) == ("failed", 0)
    assert run.error is not None
    assert run.error.startswith(f"component 'out', write(), run {run.run_id}: raised RuntimeError")
    assert "the bucket refused token ***" in run.error
    (failure,) = workspace.failures(run.run_id)
    assert failure.function == "write" and failure.detail is not None
    assert "line 5, in write" in failure.detail
    assert secret not in " ".join([run.error, failure.detail, failure.message, *lines])
    assert read_marks(workspace.catalog, workspace.catalog.component("out").id) == {}

    lines.clear()
    again = run_write(workspace, "out", python_spec(code), credential=secret, log=lines.append)
    assert again.status == "failed"
    assert "plan: 2 to write (2 new, 0 changed), 0 to remove, 0 unchanged" in lines


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def read(data_provider):\n    pass\n", "the code defines no write() function"),
        (
            "def write(data_provider, bucket):\n    pass\n",
            "write() has a parameter 'bucket' that Headwater cannot fill",
        ),
        ("def write(:\n", "syntax error"),
        ("raise ImportError('no such sdk')\n", "raised ImportError: no such sdk"),
    ],
)
def test_unusable_code_fails_the_run_with_a_clear_reason(
    workspace: Workspace, upstream: Upstream, code: str, message: str
) -> None:
    upstream.land({"a": [{"id": 1}]})

    run = run_write(workspace, "out", python_spec(code))

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.startswith("component 'out'")
    assert message in run.error

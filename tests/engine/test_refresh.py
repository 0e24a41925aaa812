"""Incremental refresh, end to end, on SQLite and PostgreSQL catalogs.

The connectors here read their listing from a JSON file the test rewrites between refreshes,
so each scenario says exactly which objects exist and with which fingerprints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater import Workspace
from headwater.errors import ComponentBusyError, RefreshFailed

# Objects come from objects.json beside the connector: {"name": [fingerprint, rows]}.
# Rows of object "a" with n rows: id 0..n-1, tag "a", fp the fingerprint.
CONNECTOR = """
import json, pathlib
HERE = pathlib.Path(__file__).parent

def list_objects(context, metadata):
    for name, (fingerprint, rows) in json.loads((HERE / "objects.json").read_text()).items():
        yield {"name": name, "fingerprint": fingerprint, "is_prefix": False, "rows": rows}

def read_records(context, metadata):
    for i in range(metadata["rows"]):
        yield {"id": i, "tag": metadata["name"], "fp": metadata["fingerprint"]}
"""


@pytest.fixture
def objects(write_connector: Callable[..., Path]) -> Callable[[dict[str, tuple[str, int]]], Path]:
    """Set the listed objects; returns the connector's path."""
    path = write_connector(CONNECTOR)

    def set_objects(spec: dict[str, tuple[str, int]]) -> Path:
        (path.parent / "objects.json").write_text(json.dumps(spec))
        return path

    return set_objects


def rows_by_tag(ws: Workspace, component: str = "conn") -> dict[str, tuple[int, set[str]]]:
    table = ws.query(
        f"SELECT tag, count(*) AS n, list(DISTINCT fp) AS fps FROM {component} GROUP BY tag"
    )
    return {r["tag"]: (r["n"], set(r["fps"])) for r in table.to_pylist()}


def test_second_refresh_reads_only_what_changed(any_workspace: Workspace, objects) -> None:
    ws = any_workspace
    path = objects({"a": ("1", 3), "b": ("1", 2), "c": ("1", 1)})
    first = ws.refresh(path).raise_for_status()
    assert first.counts == {"added": 3, "changed": 0, "removed": 0, "unchanged": 0}
    assert (first.landed, first.rows) == (3, 6)

    objects({"a": ("1", 3), "b": ("2", 4), "d": ("1", 5)})  # b changed, c removed, d added
    second = ws.refresh(path).raise_for_status()
    assert second.counts == {"added": 1, "changed": 1, "removed": 1, "unchanged": 1}
    assert (second.landed, second.rows) == (2, 9)
    assert rows_by_tag(ws) == {"a": (3, {"1"}), "b": (4, {"2"}), "d": (5, {"1"})}

    third = ws.refresh(path).raise_for_status()
    assert third.counts == {"added": 0, "changed": 0, "removed": 0, "unchanged": 3}
    assert third.landed == 0
    runs = ws.runs("conn")
    assert [r.status for r in runs] == ["succeeded"] * 3
    assert (runs[1].added, runs[1].changed, runs[1].removed) == (1, 1, 1)


def test_replaced_and_removed_files_are_deleted(workspace: Workspace, objects) -> None:
    path = objects({"a": ("1", 2), "b": ("1", 2)})
    workspace.refresh(path).raise_for_status()
    before = {p.name: p.files for p in workspace.partitions("conn")}
    objects({"a": ("2", 2)})
    workspace.refresh(path).raise_for_status()
    after = {p.name: p.files for p in workspace.partitions("conn")}
    store = Path(workspace.store.root)
    assert set(after) == {"a"}
    assert all(not (store / f).exists() for f in before["a"] + before["b"])
    assert all((store / f).exists() for f in after["a"])
    on_disk = {str(p.relative_to(store)) for p in store.rglob("*.parquet")}
    assert on_disk == set(after["a"])


def test_keep_removed_keeps_partitions(workspace: Workspace, objects) -> None:
    path = objects({"a": ("1", 2), "b": ("1", 2)})
    workspace.refresh(path, keep_removed=True).raise_for_status()
    objects({"a": ("1", 2)})
    result = workspace.refresh(path).raise_for_status()  # the stored setting is used again
    assert result.counts["removed"] == 1
    assert [p.name for p in workspace.partitions("conn")] == ["a", "b"]


def test_code_change_reprocesses_everything(workspace: Workspace, objects) -> None:
    path = objects({"a": ("1", 2), "b": ("1", 2)})
    workspace.refresh(path).raise_for_status()
    path.write_text(CONNECTOR.replace('"tag": metadata["name"]', '"tag": metadata["name"] + "!"'))
    result = workspace.refresh(path).raise_for_status()
    assert result.counts["changed"] == 2
    assert result.recoded == 2
    assert set(rows_by_tag(workspace)) == {"a!", "b!"}


def test_code_change_can_be_ignored(workspace: Workspace, objects) -> None:
    path = objects({"a": ("1", 2)})
    workspace.refresh(path, reprocess_on_code_change=False).raise_for_status()
    path.write_text(CONNECTOR + "\n# a comment\n")
    result = workspace.refresh(path).raise_for_status()
    assert result.counts["unchanged"] == 1


def test_parser_setting_change_reprocesses(workspace: Workspace, write_connector) -> None:
    path = write_connector("""
        def list_objects(context, metadata):
            yield {"name": "x", "fingerprint": "1", "is_prefix": False}
        def read_bytes(context, metadata):
            yield b"a;b\\n1;2\\n"
    """)
    workspace.refresh(path, parser="csv").raise_for_status()
    assert workspace.schema("conn").names == ["a;b"]
    result = workspace.refresh(path, parser_options={"delimiter": ";"}).raise_for_status()
    assert result.counts["changed"] == 1
    assert workspace.read_arrow("conn").to_pylist() == [{"a": 1, "b": 2}]


def test_prefixes_nest_and_metadata_comes_back_whole(workspace: Workspace, write_connector) -> None:
    path = write_connector("""
        def list_objects(context, metadata):
            depth = 0 if metadata is None else metadata["depth"] + 1
            if depth < 4:
                yield {"name": f"p{depth}/", "fingerprint": "", "is_prefix": True,
                       "depth": depth, "cursor": {"page": depth}}
            parent = "root" if metadata is None else metadata["name"]
            yield {"name": f"{parent}leaf{depth}", "fingerprint": "f", "is_prefix": False,
                   "seen": metadata}
        def read_records(context, metadata):
            seen = metadata["seen"]
            yield {"name": metadata["name"], "parent_cursor": None if seen is None
                   else seen["cursor"]["page"]}
    """)
    workspace.refresh(path).raise_for_status()
    got = {r["name"]: r["parent_cursor"] for r in workspace.read_arrow("conn").to_pylist()}
    assert got == {"rootleaf0": None, "p0/leaf1": 0, "p1/leaf2": 1, "p2/leaf3": 2, "p3/leaf4": 3}


def test_context_gets_the_credential_once_per_refresh(workspace: Workspace, write_connector):
    path = write_connector("""
        calls = []
        def context(credentials):
            calls.append(credentials)
            return {"token": credentials, "calls": len(calls)}
        def list_objects(context, metadata):
            for i in range(3):
                yield {"name": str(i), "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"token": context["token"], "calls": context["calls"]}
    """)
    workspace.refresh(path, credential="s3cret").raise_for_status()
    rows = workspace.read_arrow("conn").to_pylist()
    assert rows == [{"token": "s3cret", "calls": 1}] * 3


def test_failing_partition_fails_alone_after_retries(workspace: Workspace, write_connector):
    path = write_connector("""
        attempts = {}
        def list_objects(context, metadata):
            for name in ("good", "flaky", "broken"):
                yield {"name": name, "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            name = metadata["name"]
            attempts[name] = attempts.get(name, 0) + 1
            if name == "broken" or (name == "flaky" and attempts[name] < 3):
                raise ConnectionError(f"{name} attempt {attempts[name]}")
            yield {"name": name, "attempt": attempts[name]}
    """)
    result = workspace.refresh(path, retry={"attempts": 3, "backoff_seconds": 0})
    assert result.status == "partial"
    assert (result.landed, result.failed) == (2, 1)
    [failure] = result.failures
    assert failure.partition == "broken"
    assert failure.function == "read_records"
    assert failure.attempts == 3
    assert "ConnectionError: broken attempt 3" in failure.message
    assert "broken attempt 3" in (failure.detail or "")
    rows = sorted(workspace.read_arrow("conn").to_pylist(), key=lambda r: r["name"])
    assert rows == [{"name": "flaky", "attempt": 3}, {"name": "good", "attempt": 1}]
    assert workspace.failures(result.run_id)[0].partition == "broken"
    with pytest.raises(RefreshFailed, match="broken attempt 3"):
        result.raise_for_status()


def test_failed_changed_partition_keeps_its_old_version(workspace: Workspace, objects) -> None:
    path = objects({"a": ("1", 2), "b": ("1", 2)})
    workspace.refresh(path).raise_for_status()
    path.write_text(
        CONNECTOR.replace(
            "    for i in",
            '    if metadata["fingerprint"] == "2": raise ValueError("no")\n    for i in',
        )
    )
    objects({"a": ("2", 5), "b": ("1", 2)})
    result = workspace.refresh(path, reprocess_on_code_change=False, retry={"attempts": 1})
    assert result.status == "failed"
    assert rows_by_tag(workspace) == {"a": (2, {"1"}), "b": (2, {"1"})}
    assert result.failures[0].partition == "a"


def test_process_executor_lands_the_same_data(workspace: Workspace, objects) -> None:
    path = objects({"a": ("1", 300), "b": ("1", 200), "c": ("1", 100)})
    result = workspace.refresh(path, executor="process", concurrency=2).raise_for_status()
    assert result.rows == 600
    assert rows_by_tag(workspace) == {"a": (300, {"1"}), "b": (200, {"1"}), "c": (100, {"1"})}


def test_process_executor_names_a_failing_context(workspace: Workspace, write_connector):
    path = write_connector("""
        import multiprocessing
        def context(credentials):
            if multiprocessing.parent_process() is not None:  # in a worker process
                raise RuntimeError("no network in workers")
        def list_objects(context, metadata):
            yield {"name": "a", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"x": 1}
    """)
    result = workspace.refresh(path, executor="process", concurrency=1)
    assert result.status == "failed"
    assert result.failures[0].function == "context"
    assert "no network in workers" in result.failures[0].message


def test_component_has_one_writer(workspace: Workspace, write_connector) -> None:
    inner = write_connector(
        """
        def list_objects(context, metadata):
            yield {"name": "a", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"x": 1}
    """,
        name="inner",
    )
    outer = write_connector(
        f"""
        from headwater import Workspace
        def list_objects(context, metadata):
            # A second runner tries the same component while this refresh holds its lease.
            with Workspace(home={str(workspace.settings.home)!r}) as ws:
                try:
                    ws.refresh({str(inner)!r}, component="outer")
                except Exception as exc:
                    yield {{"name": type(exc).__name__, "fingerprint": str(exc),
                           "is_prefix": False}}
        def read_records(context, metadata):
            yield {{"error": metadata["name"], "message": metadata["fingerprint"]}}
    """,
        name="outer",
    )
    workspace.refresh(outer).raise_for_status()
    [row] = workspace.read_arrow("outer").to_pylist()
    assert row["error"] == ComponentBusyError.__name__
    assert "is being refreshed by" in row["message"]
    workspace.refresh(inner, component="outer").raise_for_status()  # the lease was released

"""The partitioned-connector scenarios, on the embedded thread executor and on Spark (`local[2]`):
added, changed and removed partitions, failures, schemas. Each must end the same on both.

The connectors read their listing from a JSON file the test rewrites between refreshes, so each
scenario says exactly which objects exist and with which fingerprints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater import RunResult, Workspace
from tests.engine.test_bad_reads import (
    GOOD,
    READ_CASES,
    assert_only_b_failed,
    by_name,
    refresh_bad,
)

# Objects come from objects.json beside the connector: {"name": [fingerprint, rows]}.
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
NO_WAIT = {"attempts": 3, "backoff_seconds": 0}


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


def assert_store_matches_catalog(ws: Workspace, component: str = "conn") -> None:
    """Every Parquet file in the component's folder is named by a committed partition, and
    every named file is there: no half partition, no orphan, nothing left under _tmp/."""
    root = Path(ws.store.root)
    folder = root / ws.catalog.component(component).id
    on_disk = {p.relative_to(root).as_posix() for p in folder.rglob("*") if p.is_file()}
    committed = {f for p in ws.partitions(component) for f in p.files}
    assert on_disk == committed


def test_added_changed_removed(workspace: Workspace, objects, executor: str) -> None:
    path = objects({"a": ("1", 3), "b": ("1", 2), "c": ("1", 1)})
    first = workspace.refresh(path, executor=executor).raise_for_status()
    assert first.counts == {"added": 3, "changed": 0, "removed": 0, "unchanged": 0}
    assert (first.landed, first.rows) == (3, 6)

    objects({"a": ("1", 3), "b": ("2", 4), "d": ("1", 5)})  # b changed, c removed, d added
    second = workspace.refresh(path).raise_for_status()  # the stored executor is used again
    assert second.counts == {"added": 1, "changed": 1, "removed": 1, "unchanged": 1}
    assert (second.landed, second.rows) == (2, 9)
    assert rows_by_tag(workspace) == {"a": (3, {"1"}), "b": (4, {"2"}), "d": (5, {"1"})}
    committed_by = {p.name: p.run_id for p in workspace.partitions("conn")}
    assert committed_by == {"a": first.run_id, "b": second.run_id, "d": second.run_id}
    assert_store_matches_catalog(workspace)

    third = workspace.refresh(path).raise_for_status()
    assert third.counts == {"added": 0, "changed": 0, "removed": 0, "unchanged": 3}
    runs = workspace.runs("conn")
    assert [(r.status, r.executor) for r in runs] == [("succeeded", executor)] * 3


def test_code_change_reprocesses_everything(workspace: Workspace, objects, executor: str) -> None:
    path = objects({"a": ("1", 2), "b": ("1", 2)})
    workspace.refresh(path, executor=executor).raise_for_status()
    path.write_text(CONNECTOR.replace('"tag": metadata["name"]', '"tag": metadata["name"] + "!"'))
    result = workspace.refresh(path).raise_for_status()
    assert (result.counts["changed"], result.recoded) == (2, 2)
    assert set(rows_by_tag(workspace)) == {"a!", "b!"}
    assert_store_matches_catalog(workspace)


def test_failing_partition_fails_alone_after_retries(
    workspace: Workspace, write_connector, executor: str
) -> None:
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
    result = workspace.refresh(path, executor=executor, retry=NO_WAIT)
    assert (result.status, result.landed, result.failed) == ("partial", 2, 1)
    [failure] = result.failures
    assert (failure.partition, failure.function, failure.attempts) == ("broken", "read_records", 3)
    assert "ConnectionError: broken attempt 3" in failure.message
    assert failure.detail is not None and 'conn.py", line ' in failure.detail
    assert "headwater/" not in failure.detail  # the connector's own frames, even from Spark
    rows = sorted(workspace.read_arrow("conn").to_pylist(), key=lambda r: r["name"])
    assert rows == [{"name": "flaky", "attempt": 3}, {"name": "good", "attempt": 1}]
    assert [f.partition for f in workspace.failures(result.run_id)] == ["broken"]
    assert_store_matches_catalog(workspace)


def test_failed_changed_partition_keeps_its_old_version(
    workspace: Workspace, objects, executor: str
) -> None:
    path = objects({"a": ("1", 2), "b": ("1", 2)})
    workspace.refresh(path, executor=executor).raise_for_status()
    path.write_text(
        CONNECTOR.replace(
            "    for i in",
            '    if metadata["fingerprint"] == "2": raise ValueError("no")\n    for i in',
        )
    )
    objects({"a": ("2", 5), "b": ("1", 2)})
    result = workspace.refresh(path, reprocess_on_code_change=False, retry={"attempts": 1})
    assert (result.status, [f.partition for f in result.failures]) == ("failed", ["a"])
    assert rows_by_tag(workspace) == {"a": (2, {"1"}), "b": (2, {"1"})}
    assert_store_matches_catalog(workspace)


SCHEMA_CONFLICT = """
def list_objects(context, metadata):
    yield {"name": "ints", "fingerprint": "1", "is_prefix": False}
    yield {"name": "floats", "fingerprint": "1", "is_prefix": False}
def read_records(context, metadata):
    yield {"v": 1 if metadata["name"] == "ints" else 1.5}
"""


def test_type_conflict_across_partitions(workspace: Workspace, write_connector, executor: str):
    # One partition at a time: "ints" commits first and sets v to int64.
    path = write_connector(SCHEMA_CONFLICT)
    result = workspace.refresh(path, executor=executor, concurrency=1)
    assert result.status == "partial"
    [failure] = result.failures
    assert failure.partition == "floats"
    assert "column 'v' was int64 and is now double" in failure.message
    assert_store_matches_catalog(workspace)  # the refused partition's files are gone

    widened = workspace.refresh(path, widen_types=True).raise_for_status()
    assert widened.landed == 1
    assert sorted(r["v"] for r in workspace.read_arrow("conn").to_pylist()) == [1.0, 1.5]


def test_new_columns_arrive_nullable(workspace: Workspace, write_connector, executor: str) -> None:
    path = write_connector("""
        def list_objects(context, metadata):
            yield {"name": "old", "fingerprint": "1", "is_prefix": False}
            yield {"name": "new", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            if metadata["name"] == "old":
                yield {"id": 1}
            else:
                yield {"id": 2, "extra": "x"}
    """)
    workspace.refresh(path, executor=executor, concurrency=1).raise_for_status()
    assert workspace.schema("conn").names == ["id", "extra"]
    rows = sorted(workspace.read_arrow("conn").to_pylist(), key=lambda r: r["id"])
    assert rows == [{"id": 1, "extra": None}, {"id": 2, "extra": "x"}]


def test_infer_schema_declares_types_and_columns(
    workspace: Workspace, write_connector, executor: str
) -> None:
    path = write_connector("""
        import pyarrow as pa
        def list_objects(context, metadata):
            yield {"name": "full", "fingerprint": "1", "is_prefix": False}
            yield {"name": "empty", "fingerprint": "1", "is_prefix": False}
        def infer_schema(context, metadata):
            return {"id": "int32", "amount": pa.float64(), "note": str}
        def read_records(context, metadata):
            if metadata["name"] == "full":
                yield {"id": 1, "amount": 2}   # amount is cast to float, note is null
    """)
    workspace.refresh(path, executor=executor).raise_for_status()
    schema = workspace.schema("conn")
    assert list(zip(schema.names, schema.types, strict=True)) == [
        ("id", pa.int32()),
        ("amount", pa.float64()),
        ("note", pa.string()),
    ]
    assert workspace.read_arrow("conn").to_pylist() == [{"id": 1, "amount": 2.0, "note": None}]
    empty = next(p for p in workspace.partitions("conn") if p.name == "empty")
    assert (empty.row_count, len(empty.files)) == (0, 1)


INTERFACES = {
    "records": ("", "yield {'id': p, 'name': f'n{p}'}"),
    "arrow": (
        "import pyarrow as pa",
        "yield pa.RecordBatch.from_pylist([{'id': p, 'name': f'n{p}'}])",
    ),
    "pandas": ("import pandas as pd", "return pd.DataFrame({'id': [p], 'name': [f'n{p}']})"),
    "bytes": ("", "yield f'id,name\\n{p},n{p}\\n'.encode()"),
}


@pytest.mark.parametrize("interface", sorted(INTERFACES))
def test_each_read_interface_lands_the_same_rows(
    workspace: Workspace, write_connector, executor: str, interface: str
) -> None:
    imports, body = INTERFACES[interface]
    function = {"arrow": "read_arrow", "pandas": "read_pandas_dataframe"}.get(
        interface, f"read_{interface}"
    )
    path = write_connector(f"""
{imports}
def list_objects(context, metadata):
    for p in range(3):
        yield {{"name": f"part{{p}}", "fingerprint": "1", "is_prefix": False, "p": p}}
def {function}(context, metadata):
    p = metadata["p"]
    {body}
""")
    parser = "csv" if interface == "bytes" else None
    result = workspace.refresh(path, executor=executor, parser=parser).raise_for_status()
    assert (result.landed, result.rows) == (3, 3)
    rows = sorted(workspace.read_arrow("conn").to_pylist(), key=lambda r: r["id"])
    assert rows == [{"id": p, "name": f"n{p}"} for p in range(3)]
    assert workspace.schema("conn").types == [pa.int64(), pa.string()]


SECRET = "hunter2-s3cr3t-token"


def test_context_gets_the_credential_and_failures_never_show_it(
    workspace: Workspace, write_connector, executor: str
) -> None:
    path = write_connector("""
        def context(credentials):
            return {"token": credentials}
        def list_objects(context, metadata):
            for name in ("ok", "expired"):
                yield {"name": name, "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            if metadata["name"] == "expired":
                raise PermissionError(f"token {context['token']} has expired")
            yield {"token_length": len(context["token"])}
    """)
    result = workspace.refresh(path, executor=executor, credential=SECRET, retry={"attempts": 1})
    assert workspace.read_arrow("conn").to_pylist() == [{"token_length": len(SECRET)}]
    [failure] = result.failures
    assert failure.message.startswith("raised PermissionError: token *** has expired")
    assert SECRET not in repr(result.to_json())
    assert SECRET not in repr(workspace.failures(result.run_id))


# A sample of the bad reads of tests/engine: one of each kind of failure, on Spark.
SPARK_READ_CASES = {
    "records-yields-str",
    "arrow-returns-dataframe",
    "pandas-mixed-object-column",
    "csv-wrong-column-count",
    "parser_function-raises",
    "read-raises",
    "infer_schema-raises",
    "records-break-the-declared-schema",
}


@pytest.mark.parametrize(
    ("code", "function", "expected", "changes", "attempts"),
    [p for p in READ_CASES if p.id in SPARK_READ_CASES],
)
def test_bad_read_on_spark_fails_its_partition_alone(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    spark: Any,
    code: str,
    function: str,
    expected: list[str],
    changes: dict[str, Any],
    attempts: int,
) -> None:
    committed = _commit_good(workspace, write_connector)
    result: RunResult = refresh_bad(
        workspace, write_connector, code, **{**changes, "executor": "spark"}
    )
    assert result.error is None  # the run went on: only b failed
    [failure] = result.failures
    assert (failure.partition, failure.function, failure.attempts) == ("b", function, attempts)
    for part in expected:
        assert part in failure.message
    assert_only_b_failed(workspace, result, committed)


def _commit_good(workspace: Workspace, write_connector: Callable[..., Path]) -> dict[str, Any]:
    """Component "c" with partitions a and b committed by tests/engine's good connector."""
    result = workspace.refresh(write_connector(GOOD, "good"), component="c")
    assert (result.status, result.landed) == ("succeeded", 2)
    return by_name(workspace)

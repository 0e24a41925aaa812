"""Bad partition reads (issue 2): the partition fails alone, its error names the partition, the
function and what to do, and its earlier committed version stays in place and readable.

Every test first commits a good version of component "c" (partitions a and b, two rows each),
then runs a version whose read works for a and breaks for b. The new code re-reads both
(its code version changed), so a lands anew and b must keep what it had.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater import RunResult, Workspace
from headwater.catalog import PartitionRecord
from headwater.errors import RefreshFailed

GOOD = """
def list_objects(context, metadata):
    yield {"name": "a", "fingerprint": "1", "is_prefix": False}
    yield {"name": "b", "fingerprint": "1", "is_prefix": False}

def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 1}
    yield {"part": metadata["name"], "x": 2}
"""

# a is unchanged, b has a new fingerprint: a bad run must not record it.
LIST = """
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

def list_objects(context, metadata):
    yield {"name": "a", "fingerprint": "1"}
    yield {"name": "b", "fingerprint": "2"}
"""
RETRY = {"attempts": 2, "backoff_seconds": 0}


def parquet_files(ws: Workspace) -> set[str]:
    """The component's Parquet files on disk, relative to the store root."""
    root = Path(ws.store.root)
    folder = root / ws.catalog.component("c").id
    return {p.relative_to(root).as_posix() for p in folder.rglob("*.parquet")}


def by_name(ws: Workspace) -> dict[str, PartitionRecord]:
    return {p.name: p for p in ws.partitions("c")}


def rows(ws: Workspace) -> list[tuple[str, Any]]:
    return sorted((r["part"], r["x"]) for r in ws.read_arrow("c").to_pylist())


@pytest.fixture
def committed(
    workspace: Workspace, write_connector: Callable[..., Path]
) -> dict[str, PartitionRecord]:
    """Component "c" with partitions a and b committed by the good connector."""
    result = workspace.refresh(write_connector(GOOD, "good"), component="c")
    assert (result.status, result.landed) == ("succeeded", 2)
    return by_name(workspace)


def refresh_bad(ws: Workspace, write: Callable[..., Path], code: str, **changes: Any) -> RunResult:
    return ws.refresh(write(LIST + code, "bad"), component="c", retry=RETRY, **changes)


def assert_only_b_failed(
    ws: Workspace, result: RunResult, before: dict[str, PartitionRecord]
) -> None:
    """a landed anew; b failed alone, and its earlier version is still committed and readable."""
    assert (result.status, result.landed, result.failed) == ("partial", 1, 1)
    after = by_name(ws)
    assert after["b"] == before["b"]  # fingerprint "1", same files, rows and run
    assert (after["a"].fingerprint, after["a"].run_id) == ("1", result.run_id)
    assert rows(ws) == [("a", 3), ("b", 1), ("b", 2)]
    assert parquet_files(ws) == {f for p in after.values() for f in p.files}
    assert [f.partition for f in ws.failures(result.run_id)] == ["b"]


# -- the cases: read code (a reads well, b does not), function, substrings, settings, attempts --


def case(
    code: str,
    function: str,
    expected: list[str],
    *,
    id: str,
    changes: dict[str, Any] | None = None,
    attempts: int = 1,
) -> Any:
    return pytest.param(code, function, expected, changes or {}, attempts, id=id)


READ_CASES = [
    case(
        """
def read_records(context, metadata):
    if metadata["name"] == "a":
        yield {"part": "a", "x": 3}
    else:
        yield "b,1"
""",
        "read_records",
        ["yielded a str at item 0; rows must be dicts", "(fix: yield dicts like"],
        id="records-yields-str",
    ),
    case(
        """
def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 3}
    if metadata["name"] == "b":
        yield [{"part": "b", "x": 4}, ("b", 5)]
""",
        "read_records",
        ["yielded a tuple at item 1; rows must be dicts", "(fix: yield dicts"],
        id="records-yields-list-with-non-dict",
    ),
    case(
        """
def read_records(context, metadata):
    if metadata["name"] == "a":
        return [{"part": "a", "x": 3}]
    return {"part": "b", "x": 1}
""",
        "read_records",
        ["returned a dict; read_records must yield dicts", "(fix: yield one dict per row"],
        id="records-returns-dict",
    ),
    case(
        """
def read_records(context, metadata):
    if metadata["name"] == "a":
        return [{"part": "a", "x": 3}]
""",
        "read_records",
        ["returned a NoneType; read_records must yield dicts", "(fix: "],
        id="records-returns-none",
    ),
    case(
        """
def read_records(context, metadata):
    if metadata["name"] == "a":
        yield {"part": "a", "x": 3}
    else:
        yield {"part": "b", "x": 1}
        yield {"part": "b", "x": "one"}
""",
        "read_records",
        ["column 'x' mixes values", "row 1: 'one'", "(fix: return one type per column"],
        id="records-mixed-types",
    ),
    case(
        """
def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 3}
    if metadata["name"] == "b":
        yield {"part": "b", "x": "one"}
""",
        "read_records",
        ["column 'x' was int64 and is now string", "(fix: ", "widen_types"],
        changes={"batch_rows": 1},
        id="records-type-changes-between-batches",
    ),
    case(
        """
def read_arrow(context, metadata):
    if metadata["name"] == "a":
        return pa.table({"part": ["a"], "x": [3]})
    return pd.DataFrame({"part": ["b"], "x": [1]})
""",
        "read_arrow",
        ["returned a DataFrame; read_arrow must return a pyarrow Table", "read_pandas_dataframe"],
        id="arrow-returns-dataframe",
    ),
    case(
        """
def read_arrow(context, metadata):
    if metadata["name"] == "a":
        yield pa.table({"part": ["a"], "x": [3]})
    else:
        yield {"part": ["b"], "x": [1]}
""",
        "read_arrow",
        ["yielded a dict at item 0; expected a pyarrow Table", "(fix: return pa.table("],
        id="arrow-yields-dict",
    ),
    case(
        """
def read_arrow(context, metadata):
    table = pa.table({"part": ["a"], "x": [3]})
    return table if metadata["name"] == "a" else [table]
""",
        "read_arrow",
        ["returned a list; read_arrow must return", "(fix: return pa.table("],
        id="arrow-returns-list",
    ),
    case(
        """
def read_pandas_dataframe(context, metadata):
    if metadata["name"] == "a":
        return pd.DataFrame({"part": ["a"], "x": [3]})
    return [{"part": "b", "x": 1}]
""",
        "read_pandas_dataframe",
        ["returned a list; read_pandas_dataframe must return a pandas DataFrame", "(fix: return"],
        id="pandas-returns-list",
    ),
    case(
        """
def read_pandas_dataframe(context, metadata):
    if metadata["name"] == "a":
        return pd.DataFrame({"part": ["a"], "x": [3]})
    return pa.table({"part": ["b"], "x": [1]})
""",
        "read_pandas_dataframe",
        ["returned a Table; read_pandas_dataframe", "(fix: this is Arrow data", "read_arrow"],
        id="pandas-returns-arrow",
    ),
    case(
        """
def read_pandas_dataframe(context, metadata):
    if metadata["name"] == "a":
        return pd.DataFrame({"part": ["a"], "x": [3]})
    return pd.DataFrame({"part": ["b", "b"], "x": [1, "one"]}, dtype=object)
""",
        "read_pandas_dataframe",
        ["the DataFrame cannot be converted to Arrow", "column x", "(fix: give each column"],
        id="pandas-mixed-object-column",
    ),
    case(
        """
def read_bytes(context, metadata):
    if metadata["name"] == "a":
        yield b"part,x\\na,3\\n"
    else:
        yield "part,x\\nb,1\\n"
""",
        "read_bytes",
        ["yielded a str as chunk 0, not bytes", "(fix: yield bytes", ".encode('utf-8')"],
        changes={"parser": "csv"},
        id="bytes-yields-str",
    ),
    case(
        """
def read_bytes(context, metadata):
    if metadata["name"] == "a":
        return b"part,x\\na,3\\n"
    return "part,x\\nb,1\\n"
""",
        "read_bytes",
        ["returned a str; read_bytes must yield bytes", "(fix: yield the object's bytes"],
        changes={"parser": "csv"},
        id="bytes-returns-str",
    ),
    case(
        """
def read_bytes(context, metadata):
    if metadata["name"] == "a":
        yield b"part,x\\na,3\\n"
    else:
        yield b"part,x\\nb,1\\nb,2,extra\\n"
""",
        "read_bytes",
        [
            "the csv parser could not read the bytes",
            "Expected 2 columns, got 3: b,2,extra",
            "(fix: check that the object really is csv",
        ],
        changes={"parser": "csv"},
        id="csv-wrong-column-count",
    ),
    case(
        """
def read_bytes(context, metadata):
    if metadata["name"] == "a":
        yield b'{"part": "a", "x": 3}\\n'
    else:
        yield b'{"part": "b", "x": 1}\\n<html>503 Service Unavailable</html>\\n'
""",
        "read_bytes",
        ["the jsonl parser could not read the bytes", "(fix: check that the object really is"],
        changes={"parser": "jsonl"},
        id="jsonl-garbage",
    ),
    case(
        """
def read_bytes(context, metadata):
    if metadata["name"] == "a":
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"part": ["a"], "x": [3]}), sink)
        yield sink.getvalue().to_pybytes()
    else:
        yield b"PAR1 this is not parquet"
""",
        "read_bytes",
        ["the parquet parser could not read the bytes", "(fix: check that the object really is"],
        changes={"parser": "parquet"},
        id="parquet-garbage",
    ),
    case(
        """
def read_bytes(context, metadata):
    yield metadata["name"].encode()

def parser_function(reader, on_next):
    for chunk in reader:
        if chunk == b"b":
            raise ValueError("unexpected record in b")
        on_next({"part": chunk.decode(), "x": 3})
""",
        "parser_function",
        ["raised ValueError: unexpected record in b"],
        attempts=2,
        id="parser_function-raises",
    ),
    case(
        """
def read_bytes(context, metadata):
    yield metadata["name"].encode()

def parser_function(reader, on_next):
    for chunk in reader:
        on_next({"part": "a", "x": 3} if chunk == b"a" else ["b", 1])
""",
        "parser_function",
        ["on_next() got a list, not a dict", "(fix: call on_next with one dict per record"],
        id="parser_function-on_next-non-dict",
    ),
    case(
        """
def read_records(context, metadata):
    if metadata["name"] == "b":
        raise RuntimeError("HTTP 503 from the API")
    yield {"part": "a", "x": 3}
""",
        "read_records",
        ["raised RuntimeError: HTTP 503 from the API"],
        attempts=2,
        id="read-raises",
    ),
    case(
        """
def infer_schema(context, metadata):
    if metadata["name"] == "b":
        return ["part", "x"]
    return {"part": "string", "x": "int"}

def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 3}
""",
        "infer_schema",
        ["must return a pyarrow Schema or a {column: type} dict, got list", "(fix: return pa."],
        id="infer_schema-returns-list",
    ),
    case(
        """
def infer_schema(context, metadata):
    return {"part": "string", "x": "int" if metadata["name"] == "a" else "integerish"}

def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 3}
""",
        "infer_schema",
        ["column 'x' has type 'integerish', which Headwater does not know", "(fix: use a"],
        id="infer_schema-unknown-type",
    ),
    case(
        """
def infer_schema(context, metadata):
    if metadata["name"] == "b":
        raise KeyError("columns")
    return {"part": "string", "x": "int"}

def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 3}
""",
        "infer_schema",
        ["raised KeyError: 'columns'"],
        attempts=2,
        id="infer_schema-raises",
    ),
    case(
        """
def infer_schema(context, metadata):
    return {"part": "string", "x": "int"}

def read_records(context, metadata):
    yield {"part": metadata["name"], "x": 3 if metadata["name"] == "a" else "three"}
""",
        "read_records",
        ["column 'x' of type string cannot be cast to int64", "(fix: return values of"],
        id="records-break-the-declared-schema",
    ),
    case(
        """
def infer_schema(context, metadata):
    return {"part": "string", "x": "int"}

def read_records(context, metadata):
    row = {"part": metadata["name"], "x": 3}
    yield row if metadata["name"] == "a" else {**row, "y": 1}
""",
        "read_records",
        ["column(s) y are not in the schema (part, x)", "(fix: declare them in infer_schema"],
        id="records-add-an-undeclared-column",
    ),
]
RAISING = {"parser_function-raises", "read-raises", "infer_schema-raises"}


@pytest.mark.parametrize(("code", "function", "expected", "changes", "attempts"), READ_CASES)
def test_bad_read_fails_its_partition_alone(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
    request: pytest.FixtureRequest,
    code: str,
    function: str,
    expected: list[str],
    changes: dict[str, Any],
    attempts: int,
) -> None:
    result = refresh_bad(workspace, write_connector, code, **changes)
    assert result.component == "c"
    assert result.error is None  # the run went on: only b failed
    [failure] = result.failures
    assert (failure.partition, failure.function, failure.attempts) == ("b", function, attempts)
    for part in expected:
        assert part in failure.message
    if request.node.callspec.id not in RAISING:
        assert failure.detail is None  # a broken contract has no connector traceback to show
    assert_only_b_failed(workspace, result, committed)


@pytest.mark.parametrize(
    ("code", "function", "expected", "changes", "attempts"),
    [p for p in READ_CASES if p.id in RAISING],
)
def test_exception_in_read_comes_with_the_connector_traceback(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
    code: str,
    function: str,
    expected: list[str],
    changes: dict[str, Any],
    attempts: int,
) -> None:
    result = refresh_bad(workspace, write_connector, code, **changes)
    [failure] = result.failures
    assert failure.detail is not None
    assert failure.detail.startswith("Traceback (most recent call last):\n")
    assert 'bad.py", line ' in failure.detail
    assert "headwater/engine" not in failure.detail  # the author's frames only
    assert failure.detail.rstrip().endswith(expected[0].removeprefix("raised "))
    assert "(fix: " in failure.message


@pytest.mark.parametrize(
    ("code", "function", "expected", "changes", "attempts"),
    [p for p in READ_CASES if p.id in {"records-yields-str", "read-raises"}],
)
def test_bad_read_in_a_worker_process_is_reported_the_same(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
    code: str,
    function: str,
    expected: list[str],
    changes: dict[str, Any],
    attempts: int,
) -> None:
    result = refresh_bad(workspace, write_connector, code, executor="process", concurrency=2)
    [failure] = result.failures
    assert (failure.partition, failure.function, failure.attempts) == ("b", function, attempts)
    assert expected[0] in failure.message
    assert_only_b_failed(workspace, result, committed)


def test_raise_for_status_names_the_partition_and_function(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
) -> None:
    result = refresh_bad(workspace, write_connector, READ_CASES[0].values[0])
    with pytest.raises(RefreshFailed) as caught:
        result.raise_for_status()
    text = str(caught.value)
    assert "'c'" in text
    assert "yielded a str at item 0" in text
    assert "partition 'b'" in text
    assert "read_records()" in text


SECRET = "hunter2-s3cr3t-token"
CONTEXT = "def context(credentials):\n    return credentials\n"


def test_credential_in_a_read_exception_is_scrubbed(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
) -> None:
    code = (
        CONTEXT
        + """
def read_records(context, metadata):
    if metadata["name"] == "b":
        raise PermissionError(f"token {context} has expired")
    yield {"part": "a", "x": 3}
"""
    )
    result = refresh_bad(workspace, write_connector, code, credential=SECRET)
    [failure] = result.failures
    assert failure.message.startswith("raised PermissionError: token *** has expired (fix: ")
    assert failure.detail is not None
    assert "PermissionError: token *** has expired" in failure.detail
    assert SECRET not in repr(result.to_json())
    assert SECRET not in repr(workspace.failures(result.run_id))
    assert_only_b_failed(workspace, result, committed)


def test_credential_echoed_in_unparseable_bytes_is_scrubbed(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
) -> None:
    # An API that echoes the request URL, key included, in its error body.
    code = (
        CONTEXT
        + """
def read_bytes(context, metadata):
    if metadata["name"] == "a":
        yield b"part,x\\na,3\\n"
    else:
        yield f"part,x\\nerror,bad request,https://api.example.com/?key={context}\\n".encode()
"""
    )
    result = refresh_bad(workspace, write_connector, code, credential=SECRET, parser="csv")
    [failure] = result.failures
    assert "Expected 2 columns, got 3" in failure.message
    assert SECRET not in repr(result.to_json())
    assert SECRET not in repr(workspace.failures(result.run_id))


# -- schema conflicts across partitions --------------------------------------------------------

CONFLICT = """
def read_records(context, metadata):
    if metadata["name"] == "a":
        yield {"part": "a", "x": 3}
    else:
        yield {"part": "b", "x": "three"}
"""


def test_type_conflict_across_partitions_names_partition_column_and_types(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
) -> None:
    # One reader at a time: a commits first and sets x to int64, so b is the one in conflict.
    result = refresh_bad(workspace, write_connector, CONFLICT, concurrency=1)
    [failure] = result.failures
    assert failure.partition == "b"
    assert "column 'x' was int64 and is now string" in failure.message
    assert "(fix: " in failure.message
    assert "widen_types" in failure.message
    assert_only_b_failed(workspace, result, committed)
    assert workspace.schema("c").field("x").type == "int64"

    widened = refresh_bad(workspace, write_connector, CONFLICT, concurrency=1, widen_types=True)
    assert widened.ok
    assert widened.counts == {"added": 0, "changed": 1, "removed": 0, "unchanged": 1}
    assert by_name(workspace)["b"].fingerprint == "2"
    assert workspace.schema("c").field("x").type == "string"
    assert rows(workspace) == [("a", "3"), ("b", "three")]
    assert parquet_files(workspace) == {f for p in workspace.partitions("c") for f in p.files}


def test_type_conflict_across_partitions_names_the_read_function(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
) -> None:
    result = refresh_bad(workspace, write_connector, CONFLICT, concurrency=1)
    [failure] = result.failures
    assert failure.partition == "b"
    assert failure.function == "read_records"


def test_failed_partition_stays_readable_when_others_change_type(
    workspace: Workspace,
    write_connector: Callable[..., Path],
    committed: dict[str, PartitionRecord],
) -> None:
    code = """
def read_records(context, metadata):
    if metadata["name"] == "b":
        raise RuntimeError("HTTP 503 from the API")
    yield {"part": "a", "x": True}
"""
    result = refresh_bad(workspace, write_connector, code)
    assert [f.partition for f in result.failures] == ["b"]
    assert by_name(workspace)["b"] == committed["b"]
    # b's two committed rows must still be readable, whatever a's new version holds
    # (as text, if the two versions' types cannot be reconciled).
    table = workspace.read_arrow("c")
    assert [str(r["x"]) for r in table.to_pylist() if r["part"] == "b"] == ["1", "2"]
    assert [r["part"] for r in workspace.query("SELECT part FROM c ORDER BY part").to_pylist()] == [
        "a",
        "b",
        "b",
    ]

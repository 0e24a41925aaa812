"""Every read interface lands the same rows; schemas come from infer_schema or the data."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater import Workspace

LIST_TWO = """
def list_objects(context, metadata):
    for part in (0, 1):
        yield {"name": f"part{part}", "fingerprint": "1", "is_prefix": False, "part": part}
"""
EXPECTED = [
    {"id": part * 10 + i, "name": f"n{part}{i}", "value": i * 0.5}
    for part in (0, 1)
    for i in range(3)
]

READERS = {
    "records": """
def read_records(context, metadata):
    p = metadata["part"]
    yield {"id": p * 10, "name": f"n{p}0", "value": 0.0}
    yield [{"id": p * 10 + i, "name": f"n{p}{i}", "value": i * 0.5} for i in (1, 2)]
""",
    "arrow_table": """
import pyarrow as pa
def read_arrow(context, metadata):
    p = metadata["part"]
    return pa.table({"id": [p * 10 + i for i in range(3)],
                     "name": [f"n{p}{i}" for i in range(3)],
                     "value": [i * 0.5 for i in range(3)]})
""",
    "arrow_batches": """
import pyarrow as pa
def read_arrow(context, metadata):
    p = metadata["part"]
    for i in range(3):
        yield pa.RecordBatch.from_pylist([{"id": p * 10 + i, "name": f"n{p}{i}",
                                           "value": i * 0.5}])
""",
    "pandas": """
import pandas as pd
def read_pandas_dataframe(context, metadata):
    p = metadata["part"]
    return pd.DataFrame({"id": [p * 10 + i for i in range(3)],
                         "name": [f"n{p}{i}" for i in range(3)],
                         "value": [i * 0.5 for i in range(3)]})
""",
    "bytes_csv": """
def read_bytes(context, metadata):
    p = metadata["part"]
    yield b"id,name,value\\n"
    for i in range(3):
        yield f"{p * 10 + i},n{p}{i},{i * 0.5}\\n".encode()
""",
    "bytes_jsonl": """
import json
def read_bytes(context, metadata):
    p = metadata["part"]
    for i in range(3):
        row = {"id": p * 10 + i, "name": f"n{p}{i}", "value": i * 0.5}
        yield (json.dumps(row) + "\\n").encode()
""",
    "user_parser": """
def read_bytes(context, metadata):
    p = metadata["part"]
    yield f"{p * 10}|n{p}0|0.0\\n{p * 10 + 1}|n{p}1|0.5\\n".encode()
    yield f"{p * 10 + 2}|n{p}2|1.0\\n".encode()

def parser_function(reader, on_next):
    text = b"".join(reader).decode()
    for line in text.splitlines():
        id_, name, value = line.split("|")
        on_next({"id": int(id_), "name": name, "value": float(value)})
""",
}
PARSERS = {"bytes_csv": "csv", "bytes_jsonl": "jsonl"}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_each_interface_lands_the_same_rows(workspace: Workspace, write_connector, reader) -> None:
    path = write_connector(LIST_TWO + READERS[reader])
    result = workspace.refresh(path, parser=PARSERS.get(reader)).raise_for_status()
    assert (result.landed, result.rows) == (2, 6)
    rows = sorted(workspace.read_arrow("conn").to_pylist(), key=lambda r: r["id"])
    assert rows == EXPECTED
    assert workspace.schema("conn").types == [pa.int64(), pa.string(), pa.float64()]


def test_parquet_bytes(workspace: Workspace, write_connector, tmp_path) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(EXPECTED[:3]), buffer)
    (tmp_path / "data.parquet").write_bytes(buffer.getvalue())
    path = write_connector(f"""
        def list_objects(context, metadata):
            yield {{"name": "only", "fingerprint": "1", "is_prefix": False}}
        def read_bytes(context, metadata):
            with open({str(tmp_path / "data.parquet")!r}, "rb") as f:
                while chunk := f.read(100):
                    yield chunk
    """)
    workspace.refresh(path, parser="parquet").raise_for_status()
    assert workspace.read_arrow("conn").to_pylist() == EXPECTED[:3]


def test_infer_schema_declares_types_and_columns(workspace: Workspace, write_connector) -> None:
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
    workspace.refresh(path).raise_for_status()
    schema = workspace.schema("conn")
    assert list(zip(schema.names, schema.types, strict=True)) == [
        ("id", pa.int32()),
        ("amount", pa.float64()),
        ("note", pa.string()),
    ]
    assert workspace.read_arrow("conn").to_pylist() == [{"id": 1, "amount": 2.0, "note": None}]
    empty = next(p for p in workspace.partitions("conn") if p.name == "empty")
    assert (empty.row_count, len(empty.files)) == (0, 1)


def test_new_columns_arrive_nullable(workspace: Workspace, write_connector) -> None:
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
    workspace.refresh(path, concurrency=1).raise_for_status()
    assert workspace.schema("conn").names == ["id", "extra"]
    rows = sorted(workspace.read_arrow("conn").to_pylist(), key=lambda r: r["id"])
    assert rows == [{"id": 1, "extra": None}, {"id": 2, "extra": "x"}]
    by_sql = workspace.query("SELECT id, extra FROM conn ORDER BY id").to_pylist()
    assert by_sql == rows


def test_columns_change_within_one_partition(workspace: Workspace, write_connector) -> None:
    # Batches of 2 rows: the third row brings a new column and the fourth an all-null one.
    path = write_connector("""
        def list_objects(context, metadata):
            yield {"name": "only", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"id": 1, "maybe": None}
            yield {"id": 2, "maybe": None}
            yield {"id": 3, "maybe": "a", "late": 1.5}
            yield {"id": 4, "maybe": None, "late": None}
            yield {"id": 5}
    """)
    workspace.refresh(path, batch_rows=2).raise_for_status()
    [partition] = workspace.partitions("conn")
    assert len(partition.files) == 2  # the new column started a second file
    rows = workspace.read_arrow("conn").to_pylist()
    assert [r["late"] for r in rows] == [None, None, 1.5, None, None]
    assert [r["maybe"] for r in rows] == [None, None, "a", None, None]
    assert workspace.schema("conn").field("maybe").type == pa.string()


@pytest.mark.parametrize(("widen", "status"), [(False, "partial"), (True, "succeeded")])
def test_int_then_float_across_partitions(workspace: Workspace, write_connector, widen, status):
    path = write_connector("""
        def list_objects(context, metadata):
            yield {"name": "ints", "fingerprint": "1", "is_prefix": False}
            yield {"name": "floats", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"v": 1 if metadata["name"] == "ints" else 1.5}
    """)
    result = workspace.refresh(path, widen_types=widen, concurrency=1)
    assert result.status == status
    if not widen:
        [failure] = result.failures
        assert failure.partition == "floats"
        assert "column 'v' was int64 and is now double" in failure.message
        assert "widen_types" in failure.message
    else:
        values = sorted(r["v"] for r in workspace.read_arrow("conn").to_pylist())
        assert values == [1.0, 1.5]


def test_lossless_widening_needs_no_setting(workspace: Workspace, write_connector) -> None:
    path = write_connector("""
        import pyarrow as pa
        def list_objects(context, metadata):
            yield {"name": "narrow", "fingerprint": "1", "is_prefix": False}
            yield {"name": "wide", "fingerprint": "1", "is_prefix": False}
        def read_arrow(context, metadata):
            t = pa.int16() if metadata["name"] == "narrow" else pa.int64()
            return pa.table({"v": pa.array([7], t)})
    """)
    workspace.refresh(path, concurrency=1).raise_for_status()
    assert workspace.schema("conn").field("v").type == pa.int64()
    assert sorted(workspace.query("SELECT v FROM conn").column("v").to_pylist()) == [7, 7]


def test_changed_types_after_code_change_are_accepted(workspace: Workspace, write_connector):
    code = """
        def list_objects(context, metadata):
            yield {"name": "only", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"v": VALUE}
    """
    workspace.refresh(write_connector(code.replace("VALUE", "1"))).raise_for_status()
    # The only partition is re-read by the new code, so its old type does not bind the new one.
    workspace.refresh(write_connector(code.replace("VALUE", "'one'"))).raise_for_status()
    assert workspace.read_arrow("conn").to_pylist() == [{"v": "one"}]


def test_read_pandas_and_batches(workspace: Workspace, write_connector) -> None:
    path = write_connector(LIST_TWO + READERS["records"])
    workspace.refresh(path).raise_for_status()
    frame = workspace.read_pandas("conn")
    assert sorted(frame["id"].tolist()) == [0, 1, 2, 10, 11, 12]
    batches = list(workspace.read_batches("conn"))
    assert sum(b.num_rows for b in batches) == 6


def test_later_batches_are_not_truncated_to_the_first_ones_types(
    workspace: Workspace, write_connector
) -> None:
    # The first batch (2 rows) has whole prices; the second a fraction. Strict types: the
    # partition must fail with the conflict named, never store 10 for 10.75.
    path = write_connector("""
        def list_objects(context, metadata):
            yield {"name": "prices", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield from [{"price": 10}, {"price": 11}, {"price": 10.75}]
    """)
    result = workspace.refresh(path, batch_rows=2)
    assert result.status == "failed"
    assert "column 'price' was int64 and is now double" in result.failures[0].message
    widened = workspace.refresh(path, batch_rows=2, widen_types=True).raise_for_status()
    assert widened.rows == 3
    assert [r["price"] for r in workspace.read_arrow("conn").to_pylist()] == [10.0, 11.0, 10.75]

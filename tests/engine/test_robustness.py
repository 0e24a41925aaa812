"""Regressions found in review: each test is a scenario that once went wrong."""

from __future__ import annotations

import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.secrets import forms, scrub

TWO = """
def list_objects(context, metadata):
    yield {"name": "a", "fingerprint": FP_A, "is_prefix": False}
    yield {"name": "b", "fingerprint": "1", "is_prefix": False}
def read_records(context, metadata):
    yield {"x": VALUE}
"""


def test_a_failed_delete_after_commit_does_not_fail_the_run(
    workspace: Workspace, write_connector, monkeypatch
) -> None:
    workspace.refresh(write_connector(TWO.replace("FP_A", "'1'").replace("VALUE", "1")))
    fs = workspace.store.fs

    def refuse(path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(fs, "rm_file", refuse)
    result = workspace.refresh(write_connector(TWO.replace("FP_A", "'2'").replace("VALUE", "1")))
    assert result.status == "succeeded"
    assert {p.name: p.fingerprint for p in workspace.partitions("conn")} == {"a": "2", "b": "1"}
    monkeypatch.undo()
    # The left-over old file of a is an orphan; the store still reads only committed files.
    assert workspace.read_arrow("conn").num_rows == 2


def test_kept_partitions_bind_new_types(workspace: Workspace, write_connector) -> None:
    keep = """
        import json, pathlib
        def list_objects(context, metadata):
            for name in json.loads((pathlib.Path(__file__).parent / "names.json").read_text()):
                yield {"name": name, "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"x": 1 if metadata["name"] == "a" else "one"}
    """
    path = write_connector(keep)
    (path.parent / "names.json").write_text('["a"]')
    workspace.refresh(path, keep_removed=True).raise_for_status()
    (path.parent / "names.json").write_text('["b"]')
    result = workspace.refresh(path)
    assert result.status == "failed"  # b's string x conflicts with kept a's int x
    assert "column 'x' was int64 and is now string" in result.failures[0].message
    assert workspace.read_arrow("conn").to_pylist() == [{"x": 1}]


def test_reading_never_fails_on_a_widened_number(workspace: Workspace, write_connector):
    path = write_connector("""
        import pyarrow as pa
        def list_objects(context, metadata):
            yield {"name": "big", "fingerprint": "1", "is_prefix": False}
            yield {"name": "float", "fingerprint": "1", "is_prefix": False}
        def read_arrow(context, metadata):
            if metadata["name"] == "big":
                return pa.table({"v": pa.array([2**53 + 1], pa.int64())})
            return pa.table({"v": pa.array([0.5])})
    """)
    workspace.refresh(path, widen_types=True, concurrency=1).raise_for_status()
    values = sorted(r["v"] for r in workspace.read_arrow("conn").to_pylist())
    assert values == [0.5, float(2**53)]  # rounded, as SQL rounds it


def test_a_declared_type_the_data_cannot_take_names_the_column(workspace, write_connector):
    path = write_connector("""
        import pyarrow as pa
        def list_objects(context, metadata):
            yield {"name": "p", "fingerprint": "1", "is_prefix": False}
        def infer_schema(context, metadata):
            return {"tags": "int"}
        def read_arrow(context, metadata):
            return pa.table({"tags": pa.array([["a"]])})
    """)
    [failure] = workspace.refresh(path).failures
    assert "column 'tags' of type list<item: string> cannot be cast to int64" in failure.message
    assert failure.function == "read_arrow"


def test_parser_can_be_cleared_and_csv_options_do_not_leak(workspace, write_connector):
    path = write_connector("""
        def list_objects(context, metadata):
            yield {"name": "p", "fingerprint": "1", "is_prefix": False}
        def read_bytes(context, metadata):
            yield b'{"a": 1}\\n'
    """)
    workspace.refresh(path, parser="csv", parser_options={"delimiter": ";"})
    assert workspace.refresh(path, parser="jsonl").raise_for_status().rows == 1
    assert workspace.stored_settings("conn").parser_options == {}
    cleared = workspace.stored_settings("conn").updated(parser="none")
    assert cleared.parser is None


def test_prefixes_may_carry_a_none_fingerprint(workspace: Workspace, write_connector) -> None:
    path = write_connector("""
        def list_objects(context, metadata):
            if metadata is None:
                yield {"name": "dir/", "fingerprint": None, "is_prefix": True}
            else:
                yield {"name": "dir/x", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {"n": 1}
    """)
    assert workspace.refresh(path).raise_for_status().landed == 1


def test_component_names_match_sql_case_insensitively(workspace, write_connector) -> None:
    path = write_connector(TWO.replace("FP_A", "'1'").replace("VALUE", "1"))
    workspace.refresh(path, component="Sales").raise_for_status()
    assert workspace.query("SELECT count(*) AS n FROM sales").column("n")[0].as_py() == 2


@pytest.mark.parametrize(
    ("credential", "leaked"),
    [
        ("S3cr3tT0ken\n", "S3cr3tT0ken"),  # stripped by the connector
        ('{"user": "ann", "token": "tok-123456"}', "tok-123456"),  # one field of it
        ("a b/c&d", "a%20b%2Fc%26d"),  # URL-encoded
    ],
)
def test_every_form_of_the_credential_is_masked(credential: str, leaked: str) -> None:
    assert leaked in forms(credential)
    assert scrub(f"401 for {leaked}", credential) == "401 for ***"
    assert scrub("user ann", '{"user": "ann", "token": "tok-123456"}') == "user ann"


def test_a_stripped_credential_never_reaches_the_run_record(workspace, write_connector):
    path = write_connector("""
        def context(credentials):
            raise PermissionError(f"token {credentials.strip()} refused")
        def list_objects(context, metadata):
            yield {"name": "p", "fingerprint": "1", "is_prefix": False}
        def read_records(context, metadata):
            yield {}
    """)
    result = workspace.refresh(path, credential="S3cr3tT0ken\n")
    assert "S3cr3tT0ken" not in (result.error or "")
    assert all("S3cr3tT0ken" not in (f.detail or "") + f.message for f in result.failures)
    assert "token *** refused" in (result.error or "")


def test_uint64_and_int64_do_not_merge_losslessly() -> None:
    from headwater import schema as schemas
    from headwater.errors import SchemaError

    with pytest.raises(SchemaError):
        schemas.merge(pa.schema([("v", pa.uint64())]), pa.schema([("v", pa.int64())]), widen=False)

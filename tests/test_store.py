"""The store on a non-local fsspec filesystem (fsspec's in-memory one stands in for S3)."""

from __future__ import annotations

import uuid
from pathlib import Path

from headwater import Settings, Workspace
from headwater.store import Store

CONNECTOR = """
def list_objects(context, metadata):
    for i in range(3):
        yield {"name": f"p{i}", "fingerprint": "1", "is_prefix": False}
def read_records(context, metadata):
    yield {"part": metadata["name"], "n": len(metadata["name"])}
"""


def test_refresh_read_and_query_on_an_fsspec_store(tmp_path: Path, write_connector) -> None:
    url = f"memory://headwater-{uuid.uuid4().hex}/store"
    settings = Settings(home=tmp_path, catalog_url=f"sqlite:///{tmp_path}/c.db", store_url=url)
    path = write_connector(CONNECTOR)
    with Workspace(settings) as ws:
        assert not ws.store.local
        ws.refresh(path).raise_for_status()
        files = [f for p in ws.partitions("conn") for f in p.files]
        assert all(ws.store.fs.exists(ws.store.path(f)) for f in files)
        assert sorted(r["part"] for r in ws.read_arrow("conn").to_pylist()) == ["p0", "p1", "p2"]
        assert ws.query("SELECT sum(n) AS n FROM conn").column("n")[0].as_py() == 6


def test_sweep_removes_only_unnamed_files(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    for name in ("keep.parquet", "orphan.parquet", "_tmp/half.parquet"):
        target = tmp_path / "store" / "c1" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")
    removed = store.sweep("c1", {"c1/keep.parquet"})
    assert sorted(removed) == ["c1/_tmp/half.parquet", "c1/orphan.parquet"]
    assert [p.name for p in (tmp_path / "store" / "c1").rglob("*.parquet")] == ["keep.parquet"]

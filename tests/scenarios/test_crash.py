"""SIGKILL a real `headwater run` at many points: no half partition becomes visible, no
committed partition is lost, and the next refresh completes the work without orphans.

A second refresh is killed while it adds, changes and removes partitions; after each kill the
catalog is checked against the store and the data, then a clean refresh must reach the final
state exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from headwater import Workspace

CONNECTOR = """
import json, os, pathlib, signal
HERE = pathlib.Path(__file__).parent

def list_objects(context, metadata):
    if os.environ.get("KILL_IN") == "list_objects":
        os.kill(os.getpid(), signal.SIGKILL)
    for name, (fp, rows) in json.loads((HERE / "objects.json").read_text()).items():
        yield {"name": name, "fingerprint": fp, "is_prefix": False, "rows": rows}

def read_records(context, metadata):
    for i in range(metadata["rows"]):
        if i == 100_000 and os.environ.get("KILL_IN") == metadata["name"]:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-partition: a batch is already written
        yield {"name": metadata["name"], "fp": metadata["fingerprint"], "i": i}
"""
BEFORE = {"a": ["1", 10], "b": ["1", 20], "c": ["1", 30], "d": ["1", 40], "e": ["1", 50]}
# b and c change (c becomes big enough to span batches), d is removed, f and g are added.
AFTER = {
    "a": ["1", 10],
    "b": ["2", 25],
    "c": ["2", 150_000],
    "e": ["1", 50],
    "f": ["1", 60],
    "g": ["1", 70],
}

# (what kills the second run, how). With concurrency 1 partitions land in plan order: f, g
# (added), then b, c (changed); so the 3rd commit is the first to replace an older version.
KILLS = [
    ("list", {"KILL_IN": "list_objects"}),
    ("mid-read", {"KILL_IN": "c"}),
    ("before-rename", {"HEADWATER_FAILPOINT": "land.before_rename:2"}),
    ("after-rename", {"HEADWATER_FAILPOINT": "land.after_rename:3"}),
    ("before-commit", {"HEADWATER_FAILPOINT": "commit.before:1"}),
    ("inside-commit-transaction", {"HEADWATER_FAILPOINT": "catalog.in_commit:3"}),
    ("after-commit-before-old-files-deleted", {"HEADWATER_FAILPOINT": "commit.after:3"}),
    ("before-drop-removed", {"HEADWATER_FAILPOINT": "refresh.before_drop:1"}),
]


def headwater_run(home: Path, connector: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "headwater",
            "--home",
            str(home),
            "run",
            str(connector),
            "--concurrency",
            "1",
            "--attempts",
            "1",
            "--json",
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def check_consistent(home: Path, specs: list[dict[str, list]]) -> dict[str, str]:
    """Every committed partition is complete and matches one of the specs; returns
    {partition: fingerprint}."""
    expected = {(n, fp): rows for spec in specs for n, (fp, rows) in spec.items()}
    with Workspace(home=home) as ws:
        store = Path(ws.store.root)
        committed = {}
        for p in ws.partitions("conn"):
            rows = []
            for f in p.files:
                assert (store / f).is_file(), f"committed file {f} of {p.name} is missing"
                rows += pq.read_table(store / f).to_pylist()
            assert (p.name, p.fingerprint) in expected, (p.name, p.fingerprint)
            assert len(rows) == p.row_count == expected[(p.name, p.fingerprint)]
            assert {(r["name"], r["fp"]) for r in rows} == {(p.name, p.fingerprint)}
            assert sorted(r["i"] for r in rows) == list(range(p.row_count))
            committed[p.name] = p.fingerprint
        assert ws.query("SELECT count(*) AS n FROM conn").column("n")[0].as_py() == sum(
            p.row_count for p in ws.partitions("conn")
        )
    return committed


@pytest.mark.parametrize(("point", "env"), KILLS, ids=[k[0] for k in KILLS])
def test_sigkill_during_refresh(tmp_path: Path, point: str, env: dict[str, str]) -> None:
    home = tmp_path / "home"
    connector = tmp_path / "conn.py"
    connector.write_text(textwrap.dedent(CONNECTOR))
    objects = tmp_path / "objects.json"

    objects.write_text(json.dumps(BEFORE))
    first = headwater_run(home, connector, {})
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    assert check_consistent(home, [BEFORE]) == {n: fp for n, (fp, _) in BEFORE.items()}

    objects.write_text(json.dumps(AFTER))
    killed = headwater_run(home, connector, env)
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, f"{point}: the run was not killed"

    committed = check_consistent(home, [BEFORE, AFTER])
    # Nothing committed was lost: every partition of the first run is still there, either
    # as it was or replaced by its complete new version (removals wait until the end).
    assert set(BEFORE) <= set(committed)

    final = headwater_run(home, connector, {})
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["status"] == "succeeded"
    assert check_consistent(home, [AFTER]) == {n: fp for n, (fp, _) in AFTER.items()}

    with Workspace(home=home) as ws:
        statuses = [r.status for r in ws.runs("conn")]
        store = Path(ws.store.root)
        committed_files = {f for p in ws.partitions("conn") for f in p.files}
    assert statuses == ["succeeded", "abandoned", "succeeded"]
    on_disk = {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}
    assert on_disk == committed_files, "orphan files were left behind"


def test_sigkill_from_outside_after_some_commits(tmp_path: Path) -> None:
    """A kill the process does not see coming: sent by this test once partitions committed."""
    home = tmp_path / "home"
    connector = tmp_path / "conn.py"
    connector.write_text(textwrap.dedent(CONNECTOR))
    spec = {f"p{i:02d}": ["1", 40_000] for i in range(12)}
    (tmp_path / "objects.json").write_text(json.dumps(spec))
    Workspace(home=home).close()  # create the catalog, so this test can poll it

    run = headwater_run(home, connector, {})
    deadline = time.monotonic() + 120
    with Workspace(home=home) as ws:
        while run.poll() is None and time.monotonic() < deadline:
            if ws.components() and len(ws.partitions("conn")) >= 3:
                break
            time.sleep(0.05)  # pacing the poll, not waiting for anything
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    if run.returncode != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed (a very fast machine)")

    committed = check_consistent(home, [spec])
    assert len(committed) >= 3

    final = headwater_run(home, connector, {})
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    assert json.loads(out)["plan"]["unchanged"] == len(committed)
    assert check_consistent(home, [spec]) == {n: "1" for n in spec}

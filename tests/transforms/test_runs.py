"""Transform runs against the real catalog and store: what a run plans, computes, lands and
drops, the lineage it records, and how it ends when inputs are missing, code fails, or the run
is cancelled."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater import Workspace
from headwater.catalog import Lineage, PartitionRecord
from headwater.errors import ComponentBusyError, SettingsError
from headwater.transforms.component import TransformSpec, lineage, run_transform

Land = Callable[[Workspace, str, dict[str, list[dict[str, Any]]]], None]

ORDERS = {
    "2024-01": [{"id": 1, "total": 50}, {"id": 2, "total": 150}],
    "2024-02": [{"id": 3, "total": 300}],
    "2024-03": [{"id": 4, "total": 20}, {"id": 5, "total": 700}],
}
SHOPS = {"all": [{"id": 1, "rate": 2}]}

BIG = TransformSpec(("orders",), ("orders",), sql="SELECT id, total FROM orders WHERE total > 100")
# Partition-wise, reading a second input whole: each order's total times the shop's rate.
SCALED = TransformSpec(
    ("orders", "shops"),
    ("orders", "shops"),
    sql="SELECT o.id, o.total * s.rate AS scaled FROM orders o CROSS JOIN shops s",
    partition_wise=True,
)
FAIL_ON_3 = """
import pyarrow.compute as pc

def transform(orders):
    if 3 in orders.column("id").to_pylist():
        raise ValueError("order 3 is bad")
    return orders.filter(pc.greater(orders.column("total"), 100))
"""

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def stored(ws: Workspace, component: str) -> dict[str, PartitionRecord]:
    return {p.name: p for p in ws.partitions(component)}


def ids(ws: Workspace, component: str) -> list[int]:
    return sorted(ws.read_arrow(component).column("id").to_pylist())


def fingerprints(ws: Workspace, component: str) -> dict[str, str]:
    return {p.name: p.fingerprint for p in ws.partitions(component)}


def test_a_whole_transform_lands_one_partition_with_every_input_partition_as_lineage(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    lines: list[str] = []
    run = run_transform(workspace, "big", BIG, log=lines.append)
    assert (run.status, run.added, run.landed, run.rows, run.error) == ("succeeded", 1, 1, 3, None)
    assert ids(workspace, "big") == [2, 3, 5]
    assert list(stored(workspace, "big")) == ["all"]
    upstream = workspace.catalog.component("orders").id
    assert lineage(workspace, "big") == {
        "all": [Lineage(upstream, n, f) for n, f in fingerprints(workspace, "orders").items()]
    }
    assert lines[0] == "plan: 1 added, 0 changed, 0 removed, 0 unchanged"
    assert "landed partition 'all': 3 rows" in lines
    record = workspace.run(run.run_id)
    assert (record.status, record.executor, record.added, record.landed, record.rows) == (
        "succeeded",
        "duckdb",
        1,
        1,
        3,
    )
    assert workspace.catalog.component("big").kind == "transform"


def test_a_rerun_without_changes_computes_nothing(workspace: Workspace, land: Land) -> None:
    land(workspace, "orders", ORDERS)
    first = run_transform(workspace, "big", BIG)
    again = run_transform(workspace, "big", BIG)
    assert (again.status, again.unchanged, again.added + again.changed, again.landed) == (
        "succeeded",
        1,
        0,
        0,
    )
    assert stored(workspace, "big")["all"].run_id == first.run_id


def test_a_whole_transform_is_recomputed_when_any_input_changes(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    run_transform(workspace, "big", BIG)
    land(workspace, "orders", {**ORDERS, "2024-04": [{"id": 6, "total": 999}]})
    run = run_transform(workspace, "big", BIG)
    assert (run.changed, run.landed) == (1, 1)
    assert ids(workspace, "big") == [2, 3, 5, 6]
    assert len(lineage(workspace, "big")["all"]) == 4


def test_partition_wise_recomputes_only_the_partitions_whose_input_changed(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    land(workspace, "shops", SHOPS)
    first = run_transform(workspace, "scaled", SCALED)
    assert (first.added, first.landed) == (3, 3)
    before = stored(workspace, "scaled")

    changed = {**ORDERS, "2024-02": [{"id": 3, "total": 301}], "2024-04": [{"id": 6, "total": 1}]}
    land(workspace, "orders", changed)
    lines: list[str] = []
    second = run_transform(workspace, "scaled", SCALED, log=lines.append)

    assert lines[0] == "plan: 1 added, 1 changed, 0 removed, 2 unchanged"
    assert (second.status, second.landed) == ("succeeded", 2)
    after = stored(workspace, "scaled")
    assert {n: p.run_id for n, p in after.items()} == {
        "2024-01": first.run_id,
        "2024-02": second.run_id,
        "2024-03": first.run_id,
        "2024-04": second.run_id,
    }
    assert after["2024-01"].committed_at == before["2024-01"].committed_at
    assert after["2024-02"].committed_at > before["2024-02"].committed_at
    orders, shops = (workspace.catalog.component(n).id for n in ("orders", "shops"))
    upstream = fingerprints(workspace, "orders")
    assert lineage(workspace, "scaled")["2024-02"] == sorted(
        [
            Lineage(orders, "2024-02", upstream["2024-02"]),
            Lineage(shops, "all", fingerprints(workspace, "shops")["all"]),
        ],
        key=lambda e: (e.input_component_id, e.input_partition),
    )
    rows = workspace.read_arrow("scaled").sort_by("id").to_pylist()
    assert [r["scaled"] for r in rows] == [100, 300, 602, 40, 1400, 2]


def test_a_removed_input_partition_removes_its_output_partition_and_files(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    land(workspace, "shops", SHOPS)
    run_transform(workspace, "scaled", SCALED)
    files = stored(workspace, "scaled")["2024-02"].files
    land(workspace, "orders", {k: v for k, v in ORDERS.items() if k != "2024-02"})

    run = run_transform(workspace, "scaled", SCALED)

    assert (run.removed, run.unchanged, run.landed) == (1, 2, 0)
    assert list(stored(workspace, "scaled")) == ["2024-01", "2024-03"]
    assert "2024-02" not in lineage(workspace, "scaled")
    assert not any(Path(workspace.store.path(f)).exists() for f in files)


def test_a_change_in_another_input_recomputes_every_partition(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    land(workspace, "shops", SHOPS)
    run_transform(workspace, "scaled", SCALED)
    land(workspace, "shops", {"all": [{"id": 1, "rate": 3}]})
    run = run_transform(workspace, "scaled", SCALED)
    assert (run.changed, run.unchanged, run.landed) == (3, 0, 3)
    assert {p.run_id for p in stored(workspace, "scaled").values()} == {run.run_id}
    assert sorted(workspace.read_arrow("scaled").column("scaled").to_pylist()) == [
        60,
        150,
        450,
        900,
        2100,
    ]


def test_a_code_change_recomputes_every_partition(workspace: Workspace, land: Land) -> None:
    land(workspace, "orders", ORDERS)
    land(workspace, "shops", SHOPS)
    run_transform(workspace, "scaled", SCALED)
    spec = TransformSpec(
        SCALED.inputs, SCALED.names, sql="SELECT id FROM orders", partition_wise=True
    )
    run = run_transform(workspace, "scaled", spec)
    assert (run.changed, run.unchanged, run.landed) == (3, 0, 3)
    assert workspace.schema("scaled").names == ["id"]
    assert workspace.catalog.component("scaled").code_version == spec.code_version


def test_a_failing_partition_fails_alone_and_names_where(workspace: Workspace, land: Land) -> None:
    land(workspace, "orders", ORDERS)
    spec = TransformSpec(("orders",), ("orders",), python=FAIL_ON_3, partition_wise=True)
    run = run_transform(workspace, "big", spec)

    assert (run.status, run.landed, run.failed) == ("partial", 2, 1)
    assert list(stored(workspace, "big")) == ["2024-01", "2024-03"]
    assert run.error is not None
    assert run.error.startswith(
        f"component 'big', transform(), partition '2024-02', run {run.run_id}: "
        "raised ValueError: order 3 is bad"
    )
    [failure] = run.failures
    assert (failure.partition, failure.function) == ("2024-02", "transform")
    assert failure.detail is not None and 'raise ValueError("order 3 is bad")' in failure.detail
    assert workspace.failures(run.run_id) == [failure]
    assert (workspace.run(run.run_id).status, workspace.run(run.run_id).error) == (
        "partial",
        run.error,
    )
    # The failed partition is planned again (it was never landed); the others stay.
    again = run_transform(workspace, "big", spec)
    assert (again.added, again.unchanged, again.failed) == (1, 2, 1)


def test_a_failing_whole_transform_keeps_what_was_committed(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    run_transform(workspace, "big", BIG)
    broken = TransformSpec(("orders",), ("orders",), sql="SELECT missing_column FROM orders")
    run = run_transform(workspace, "big", broken)
    assert (run.status, run.changed, run.landed, run.failed) == ("failed", 1, 0, 1)
    assert run.error is not None and "partition 'all'" in run.error
    assert "missing_column" in run.error
    assert ids(workspace, "big") == [2, 3, 5]


def test_an_input_file_gone_while_reading_fails_that_partition_only(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    land(workspace, "shops", SHOPS)
    # As if an upstream run replaced the partition after this run listed it.
    workspace.store.delete(stored(workspace, "orders")["2024-02"].files)
    run = run_transform(workspace, "scaled", SCALED)
    assert (run.status, run.landed, [f.partition for f in run.failures]) == (
        "partial",
        2,
        ["2024-02"],
    )
    assert run.error is not None and "a file of input 'orders' is gone" in run.error


def test_an_input_that_never_ran_computes_nothing_and_says_why(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    workspace.catalog.ensure_component(
        "shops", kind="partitioned", source_ref="-", settings={}, code_version="", now=NOW
    )
    lines: list[str] = []
    run = run_transform(workspace, "scaled", SCALED, log=lines.append)
    assert (run.status, run.landed, run.error, run.failures) == ("succeeded", 0, None, ())
    assert run.message is not None and "input shops has never run" in run.message
    assert run.message in lines
    assert stored(workspace, "scaled") == {}

    land(workspace, "shops", SHOPS)
    assert run_transform(workspace, "scaled", SCALED).landed == 3


def test_an_emptied_input_empties_the_output(workspace: Workspace, land: Land) -> None:
    land(workspace, "orders", ORDERS)
    land(workspace, "shops", SHOPS)
    assert run_transform(workspace, "scaled", SCALED).landed == 3
    land(workspace, "shops", {})  # it ran, and now holds nothing
    run = run_transform(workspace, "scaled", SCALED)
    assert (run.status, run.removed) == ("succeeded", 3)
    assert run.message == "input shops holds no partitions: the output is empty"
    assert stored(workspace, "scaled") == {}


def test_a_missing_input_component_fails_the_run(workspace: Workspace) -> None:
    run = run_transform(workspace, "big", BIG)
    assert (run.status, run.failed) == ("failed", 0)
    assert run.error is not None and "no component named 'orders'" in run.error
    assert workspace.run(run.run_id).status == "failed"


def test_cancel_stops_between_partitions_and_keeps_what_landed(
    workspace: Workspace, land: Land
) -> None:
    land(workspace, "orders", ORDERS)
    land(workspace, "shops", SHOPS)
    cancel = threading.Event()

    def log(line: str) -> None:
        if line.startswith("landed partition"):
            cancel.set()

    run = run_transform(workspace, "scaled", SCALED, log=log, cancel=cancel)
    assert (run.status, run.landed, run.added) == ("interrupted", 1, 3)
    assert list(stored(workspace, "scaled")) == ["2024-01"]
    assert workspace.run(run.run_id).status == "interrupted"

    rest = run_transform(workspace, "scaled", SCALED)
    assert (rest.added, rest.unchanged, rest.landed) == (2, 1, 2)


def test_one_writer_per_component(workspace: Workspace, land: Land) -> None:
    land(workspace, "orders", ORDERS)
    run_transform(workspace, "big", BIG)
    record = workspace.catalog.component("big")
    busy = pytest.raises(ComponentBusyError, match="component 'big' is being refreshed")
    with workspace.catalog.lease(record, workspace.clock), busy:
        run_transform(workspace, "big", BIG)
    assert run_transform(workspace, "big", BIG).status == "succeeded"


def test_a_component_of_another_kind_is_refused(workspace: Workspace, land: Land) -> None:
    land(workspace, "orders", ORDERS)
    spec = TransformSpec(("shops",), ("shops",), sql="SELECT * FROM shops")
    with pytest.raises(SettingsError, match="exists as a partitioned component"):
        run_transform(workspace, "orders", spec)


def test_a_transform_cannot_read_itself(workspace: Workspace) -> None:
    with pytest.raises(SettingsError, match="cannot read itself"):
        run_transform(workspace, "orders", BIG)


def test_a_server_made_component_keeps_its_source_ref(workspace: Workspace, land: Land) -> None:
    land(workspace, "orders", ORDERS)
    workspace.catalog.ensure_component(
        "svc__flow__big",
        kind="transform",
        source_ref="server:svc/flow/big",
        settings={},
        code_version="",
        now=workspace.clock(),
    )
    assert run_transform(workspace, "svc__flow__big", BIG).landed == 1
    record = workspace.catalog.component("svc__flow__big")
    assert (record.source_ref, record.code_version) == ("server:svc/flow/big", BIG.code_version)


# Upstream from a real partitioned connector: objects listed from a JSON file the test rewrites.
CONNECTOR = """
import json, pathlib
HERE = pathlib.Path(__file__).parent

def list_objects(context, metadata):
    for name, fingerprint in json.loads((HERE / "objects.json").read_text()).items():
        yield {"name": name, "fingerprint": fingerprint, "is_prefix": False}

def read_records(context, metadata):
    for i in range(3):
        yield {"part": metadata["name"], "n": i, "fp": metadata["fingerprint"]}
"""


def test_partition_wise_over_a_refreshed_connector(
    workspace: Workspace, write_connector: Callable[..., Path]
) -> None:
    path = write_connector(CONNECTOR, name="files")

    def refresh(objects: dict[str, str]) -> None:
        (path.parent / "objects.json").write_text(json.dumps(objects))
        workspace.refresh(path).raise_for_status()

    spec = TransformSpec(
        ("files",),
        ("f",),
        sql="SELECT part, sum(n) AS total, any_value(fp) AS fp FROM f GROUP BY part",
        partition_wise=True,
    )
    refresh({"a": "1", "b": "1"})
    first = run_transform(workspace, "sums", spec)
    refresh({"a": "1", "b": "2", "c": "1"})
    second = run_transform(workspace, "sums", spec)
    assert (second.added, second.changed, second.unchanged) == (1, 1, 1)
    assert {n: p.run_id for n, p in stored(workspace, "sums").items()} == {
        "a": first.run_id,
        "b": second.run_id,
        "c": second.run_id,
    }
    rows = workspace.query("SELECT part, total, fp FROM sums ORDER BY part").to_pylist()
    assert rows == [
        {"part": "a", "total": 3, "fp": "1"},
        {"part": "b", "total": 3, "fp": "2"},
        {"part": "c", "total": 3, "fp": "1"},
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("catalog_url", ["postgres"], indirect=True)
def test_incremental_runs_on_postgres(any_workspace: Workspace, land: Land) -> None:
    ws = any_workspace
    land(ws, "orders", ORDERS)
    land(ws, "shops", SHOPS)
    first = run_transform(ws, "scaled", SCALED)
    land(ws, "orders", {**ORDERS, "2024-02": [{"id": 3, "total": 1}]})
    second = run_transform(ws, "scaled", SCALED)
    assert (first.landed, second.changed, second.unchanged) == (3, 1, 2)
    assert len(lineage(ws, "scaled")["2024-02"]) == 2
    spec = TransformSpec(("orders",), ("orders",), python=FAIL_ON_3, partition_wise=True)
    failing = run_transform(ws, "checked", spec)
    assert (failing.status, [f.partition for f in ws.failures(failing.run_id)]) == (
        "partial",
        ["2024-02"],
    )

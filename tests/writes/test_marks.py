"""Write marks in the catalog (on SQLite and PostgreSQL), and the write plan as a scenario
table: upstream partitions + what the target holds -> what is written, removed, kept."""

from __future__ import annotations

import datetime

import pytest

from headwater import Workspace
from headwater.catalog.marks import clear_marks, read_marks, record_marks, replace_marks
from headwater.errors import ComponentBusyError
from headwater.writes.plan import UpstreamPartition, partition_version, plan_write

T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def test_marks_are_recorded_replaced_and_cleared(any_workspace: Workspace) -> None:
    catalog = any_workspace.catalog
    record = catalog.ensure_component(
        "out", kind="write", source_ref="files", settings={}, code_version="x", now=T0
    )
    other = catalog.ensure_component(
        "other", kind="write", source_ref="files", settings={}, code_version="x", now=T0
    )
    record_marks(catalog, other.id, {"a": "keep"}, run_id=9, now=T0)

    record_marks(catalog, record.id, {"a": "v1", "b": "v1"}, run_id=1, now=T0)
    later = T0 + datetime.timedelta(hours=1)
    record_marks(catalog, record.id, {"a": "v2"}, removed=["b"], run_id=2, now=later)

    marks = read_marks(catalog, record.id)
    assert list(marks) == ["a"]
    assert (marks["a"].fingerprint, marks["a"].run_id, marks["a"].written_at) == ("v2", 2, later)

    replace_marks(catalog, record.id, {"a": "v2", "c": "v1"}, run_id=3, now=later)
    assert {p: m.fingerprint for p, m in read_marks(catalog, record.id).items()} == {
        "a": "v2",
        "c": "v1",
    }
    assert read_marks(catalog, record.id)["a"].run_id == 2, "an unchanged mark is left as it was"

    clear_marks(catalog, record.id, ["c"])
    assert list(read_marks(catalog, record.id)) == ["a"]
    clear_marks(catalog, record.id)
    assert read_marks(catalog, record.id) == {}
    assert list(read_marks(catalog, other.id)) == ["a"], "other components' marks stay"


def test_a_runner_that_lost_its_lease_records_no_mark(any_workspace: Workspace) -> None:
    catalog = any_workspace.catalog
    record = catalog.ensure_component(
        "out", kind="write", source_ref="files", settings={}, code_version="x", now=T0
    )
    with catalog.lease(record, any_workspace.clock):
        with pytest.raises(ComponentBusyError, match="lost the component's lease"):
            record_marks(catalog, record.id, {"a": "v1"}, run_id=1, now=T0, holder="stale")
        with pytest.raises(ComponentBusyError):
            clear_marks(catalog, record.id, holder="stale")
    assert read_marks(catalog, record.id) == {}


def part(name: str, fingerprint: str, files: tuple[str, ...] = ("f",)) -> UpstreamPartition:
    return UpstreamPartition(name, fingerprint, files, 1)


def v(fingerprint: str, files: tuple[str, ...] = ("f",)) -> str:
    return partition_version(fingerprint, files)


# (upstream partitions, what the target holds) -> (added, changed, removed, unchanged)
SCENARIOS = [
    ([], {}, ([], [], [], [])),
    ([part("a", "1")], {}, (["a"], [], [], [])),
    ([part("a", "1")], {"a": v("1")}, ([], [], [], ["a"])),
    ([part("a", "2")], {"a": v("1")}, ([], ["a"], [], [])),
    # Same fingerprint, committed again under new files (new code, a forced re-read).
    ([part("a", "1", ("g",))], {"a": v("1")}, ([], ["a"], [], [])),
    ([], {"a": v("1"), "b": v("1")}, ([], [], ["a", "b"], [])),
    (
        [part("b", "1"), part("c", "1"), part("a", "2")],
        {"a": v("1"), "b": v("1"), "z": v("1")},
        (["c"], ["a"], ["z"], ["b"]),
    ),
]


@pytest.mark.parametrize(("upstream", "held", "expected"), SCENARIOS)
def test_the_plan(
    upstream: list[UpstreamPartition],
    held: dict[str, str],
    expected: tuple[list[str], list[str], list[str], list[str]],
) -> None:
    plan = plan_write(upstream, held)

    names = lambda parts: [p.name for p in parts]  # noqa: E731 - a one-line local helper
    assert (names(plan.added), names(plan.changed), plan.removed, plan.unchanged) == expected
    assert names(plan.to_write) == sorted(expected[0] + expected[1])

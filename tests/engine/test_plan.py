"""Planning as scenario tables: listed objects + prior catalog state -> expected plan."""

from __future__ import annotations

import pytest

from headwater.catalog import StoredPartition
from headwater.engine.listing import ListedObject
from headwater.engine.plan import plan

CODE = "v1"


def listed(spec: str) -> list[ListedObject]:
    """'a=1 b=2' -> objects a (fingerprint 1) and b (fingerprint 2)."""
    return [ListedObject(n, f, {"name": n}) for n, f in (p.split("=") for p in spec.split())]


def stored(spec: str, code: str = CODE) -> dict[str, StoredPartition]:
    """'a=1@v0' -> partition a, fingerprint 1, written by code v0 (default: current code)."""
    result = {}
    for part in spec.split():
        name, rest = part.split("=")
        fingerprint, _, version = rest.partition("@")
        result[name] = StoredPartition(name, fingerprint, version or code, "schema")
    return result


SCENARIOS = [
    # (what is listed, what the catalog holds, added, changed, removed, unchanged)
    ("a=1 b=1", "", "a b", "", "", ""),
    ("a=1 b=1", "a=1 b=1", "", "", "", "a b"),
    ("a=1 b=2", "a=1 b=1", "", "b", "", "a"),
    ("a=1", "a=1 b=1", "", "", "b", "a"),
    ("a=1 c=1", "a=1 b=1", "c", "", "b", "a"),
    ("", "a=1 b=1", "", "", "a b", ""),
    ("a=1 b=1", "a=1@v0 b=1", "", "a", "", "b"),  # older code: re-read
    ("a=2 b=1", "a=1@v0 b=1@v0", "", "a b", "", ""),
]


@pytest.mark.parametrize(("now", "before", "added", "changed", "removed", "unchanged"), SCENARIOS)
def test_plan_scenarios(
    now: str, before: str, added: str, changed: str, removed: str, unchanged: str
) -> None:
    result = plan(listed(now), stored(before), CODE)
    assert [o.name for o in result.added] == added.split()
    assert [o.name for o in result.changed] == changed.split()
    assert result.removed == removed.split()
    assert result.unchanged == unchanged.split()
    assert [o.name for o in result.to_read] == added.split() + changed.split()


def test_code_change_ignored_when_reprocessing_is_off() -> None:
    result = plan(listed("a=1 b=2"), stored("a=1@v0 b=1@v0"), CODE, reprocess_on_code_change=False)
    assert [o.name for o in result.changed] == ["b"]
    assert result.unchanged == ["a"]
    assert result.recoded == 0


def test_recoded_counts_only_code_changes() -> None:
    result = plan(listed("a=1 b=2 c=1"), stored("a=1@v0 b=1@v0 c=1"), CODE)
    assert result.recoded == 1  # a: same fingerprint, old code; b changed anyway
    assert result.counts() == {"added": 0, "changed": 2, "removed": 0, "unchanged": 1}

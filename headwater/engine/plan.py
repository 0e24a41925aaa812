"""The refresh plan: what was listed, diffed against what the catalog holds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from headwater.catalog.catalog import StoredPartition
from headwater.engine.listing import ListedObject


@dataclass(frozen=True)
class Plan:
    """Proposed changes to a component: read `added` + `changed`, drop `removed`.

    `changed` holds objects whose fingerprint changed and, when the code version changed,
    every listed object that was produced by older code (`recoded` counts those).
    """

    added: list[ListedObject] = field(default_factory=list)
    changed: list[ListedObject] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    recoded: int = 0

    @property
    def to_read(self) -> list[ListedObject]:
        return [*self.added, *self.changed]

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "unchanged": len(self.unchanged),
        }


def plan(
    listed: Iterable[ListedObject],
    stored: Mapping[str, StoredPartition],
    code_version: str,
    *,
    reprocess_on_code_change: bool = True,
) -> Plan:
    """Diff a listing against the catalog by name and fingerprint (and code version).

    Example:
        >>> stored = {"a": StoredPartition("a", "v1", "c", "s")}
        >>> p = plan([ListedObject("a", "v2", {})], stored, "c")
        >>> p.counts()
        {'added': 0, 'changed': 1, 'removed': 0, 'unchanged': 0}
    """
    added: list[ListedObject] = []
    changed: list[ListedObject] = []
    unchanged: list[str] = []
    recoded = 0
    for obj in listed:
        before = stored.get(obj.name)
        if before is None:
            added.append(obj)
        elif before.fingerprint != obj.fingerprint:
            changed.append(obj)
        elif reprocess_on_code_change and before.code_version != code_version:
            changed.append(obj)
            recoded += 1
        else:
            unchanged.append(obj.name)
    names = {o.name for o in (*added, *changed)}.union(unchanged)
    removed = [name for name in stored if name not in names]
    return Plan(added, changed, removed, unchanged, recoded)

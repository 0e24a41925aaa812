"""The write plan: the upstream's committed partitions, diffed against what the target holds."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from headwater.catalog import PartitionRecord


def partition_version(fingerprint: str, files: Sequence[str]) -> str:
    """What a write mark records of a partition: its fingerprint and the commit that holds it.

    The fingerprint alone is not enough: a partition re-read with the same fingerprint (new
    connector code, a forced re-read) is committed again, under new file names, and must be
    written again. So the version is `<fingerprint>@<hash of the partition's file names>`.

    Example:
        >>> partition_version("etag-1", ["c1/0a.parquet"])
        'etag-1@907f07189784'
    """
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:12]
    return f"{fingerprint}@{digest}"


@dataclass(frozen=True)
class UpstreamPartition:
    """A committed partition of the component a write connector reads."""

    name: str
    fingerprint: str
    files: tuple[str, ...]
    rows: int

    @classmethod
    def of(cls, record: PartitionRecord) -> UpstreamPartition:
        return cls(record.name, record.fingerprint, tuple(record.files), record.row_count)

    @property
    def version(self) -> str:
        return partition_version(self.fingerprint, self.files)


@dataclass(frozen=True)
class WritePlan:
    """Proposed changes to a target: write `added` + `changed`, remove `removed`."""

    added: list[UpstreamPartition] = field(default_factory=list)
    changed: list[UpstreamPartition] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def to_write(self) -> list[UpstreamPartition]:
        return sorted([*self.added, *self.changed], key=lambda p: p.name)

    def describe(self) -> str:
        return (
            f"plan: {len(self.added) + len(self.changed)} to write ({len(self.added)} new, "
            f"{len(self.changed)} changed), {len(self.removed)} to remove, "
            f"{len(self.unchanged)} unchanged"
        )


def plan_write(upstream: Sequence[UpstreamPartition], written: Mapping[str, str]) -> WritePlan:
    """Diff the upstream's partitions against what the target holds (partition -> version).

    Example:
        >>> a = UpstreamPartition("a", "v2", ("f",), 1)
        >>> p = plan_write([a], {"a": "v1@x", "b": "v1@y"})
        >>> [x.name for x in p.changed], p.removed
        (['a'], ['b'])
    """
    plan = WritePlan()
    for partition in upstream:
        before = written.get(partition.name)
        if before is None:
            plan.added.append(partition)
        elif before != partition.version:
            plan.changed.append(partition)
        else:
            plan.unchanged.append(partition.name)
    names = {p.name for p in upstream}
    plan.removed.extend(sorted(name for name in written if name not in names))
    return plan

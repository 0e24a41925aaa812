"""A stream's log: its commits landed as partitions of a Headwater component.

Each commit becomes one partition (named by its sequence number) holding the change batch, and
the offset the subject reported with it is stored in the same catalog transaction. After a
restart the log gives back the offset to `seek` to, the keyed state (by replaying the changes),
and whatever commits a durable sink is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from headwater.catalog import Checkpoint
from headwater.catalog.lease import Lease
from headwater.workspace import Workspace

KIND = "stream"


def partition_name(seq: int) -> str:
    return f"{seq:012d}"


class StreamLog:
    """The component a stream lands in; held under the component's lease while running."""

    def __init__(self, workspace: Workspace, component: str, source_ref: str) -> None:
        self.workspace = workspace
        self.catalog = workspace.catalog
        self.store = workspace.store
        self.name = component
        self.record = self.catalog.ensure_component(
            component,
            kind=KIND,
            source_ref=source_ref,
            settings={},
            code_version="stream",
            now=workspace.clock(),
        )
        self.lease: Lease | None = None

    def open(self) -> Checkpoint | None:
        """Take the component's lease (one writer) and return the last landed commit."""
        self.lease = self.catalog.lease(self.record, self.workspace.clock)
        self.lease.acquire()
        self.store.sweep(self.record.id, self.catalog.committed_files(self.record.id))
        return self.catalog.checkpoint(self.record.id)

    def append(self, seq: int, at: int, offset: Any, changes: pa.Table) -> None:
        """Land one commit: its partition and its checkpoint, in one transaction."""
        assert self.lease is not None
        self.lease.check()
        self.workspace.land_table(
            self.record,
            partition_name(seq),
            changes,
            fingerprint=str(at),
            run_id=0,
            checkpoint=Checkpoint(seq, at, offset),
        )

    def replay(self, after: int = 0) -> Iterator[tuple[int, pa.Table]]:
        """(seq, changes) of every landed commit after `after`, in order."""
        partitions = sorted(self.catalog.partitions(self.record.id), key=lambda p: p.name)
        found = self.catalog.schemas({p.schema_id for p in partitions})
        for partition in partitions:
            seq = int(partition.name)
            if seq <= after:
                continue
            schema = found[partition.schema_id]
            batches = list(self.store.read_batches(partition.files, schema))
            yield seq, pa.Table.from_batches(batches, schema=schema)

    def close(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None

"""What a transform run computes: its output partitions, each fingerprinted by the code and the
input partitions it is computed from (which are also its lineage).

An input partition is identified by its name, fingerprint and code version, as the engine
plans: a partition re-read by changed upstream code keeps its fingerprint but not its version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from headwater.catalog import Catalog, ComponentRecord, Lineage, PartitionRecord
from headwater.catalog.catalog import read_schema
from headwater.store import Store

WHOLE = "all"  # the one output partition of a transform that is not partition-wise


@dataclass(frozen=True)
class Input:
    """One upstream component as a run sees it: its partitions, listed once, and the schema
    reads are laid out in (so every output partition sees the same columns)."""

    name: str  # the id the SQL or Python uses
    component: ComponentRecord
    partitions: tuple[PartitionRecord, ...]
    schema: pa.Schema

    def read(self, store: Store, partitions: Sequence[PartitionRecord] | None = None) -> pa.Table:
        """The rows of `partitions` (default: all of them) as one Arrow table."""
        files = [
            f for p in (self.partitions if partitions is None else partitions) for f in p.files
        ]
        return pa.Table.from_batches(list(store.read_batches(files, self.schema)), self.schema)

    def lineage(self, partitions: Sequence[PartitionRecord] | None = None) -> list[Lineage]:
        return [
            Lineage(self.component.id, p.name, p.fingerprint)
            for p in (self.partitions if partitions is None else partitions)
        ]

    def digest(self) -> str:
        return _hash([self.component.id, [_state(p) for p in self.partitions]])


def list_inputs(catalog: Catalog, components: Sequence[str], names: Sequence[str]) -> list[Input]:
    """Every input's committed partitions, now. Raises NotFoundError for a missing component."""
    found = []
    for component, name in zip(components, names, strict=True):
        record = catalog.component(component)
        partitions = tuple(catalog.partitions(record.id))
        ids = list(dict.fromkeys(p.schema_id for p in partitions))
        schemas = catalog.schemas(ids)
        found.append(Input(name, record, partitions, read_schema(schemas[i] for i in ids)))
    return found


@dataclass(frozen=True)
class Output:
    """One output partition a run wants to exist, and what it is computed from."""

    name: str
    fingerprint: str
    lineage: tuple[Lineage, ...]
    source: PartitionRecord | None  # partition-wise: the first input's partition; else None


def outputs(code_version: str, inputs: Sequence[Input], partition_wise: bool) -> list[Output]:
    """The output partitions, in order. Partition-wise, one per partition of the first input,
    whose fingerprint covers that partition and every partition of the other inputs (so a
    change there recomputes every output); otherwise one partition covering every input."""
    if not partition_wise:
        return [
            Output(
                WHOLE,
                _hash([code_version, [i.digest() for i in inputs]]),
                _unique(lineage for i in inputs for lineage in i.lineage()),
                None,
            )
        ]
    first, others = inputs[0], inputs[1:]
    rest = [i.digest() for i in others]
    rest_lineage = [lineage for i in others for lineage in i.lineage()]
    return [
        Output(
            p.name,
            _hash([code_version, first.component.id, _state(p), rest]),
            _unique([*first.lineage([p]), *rest_lineage]),
            p,
        )
        for p in first.partitions
    ]


def _state(partition: PartitionRecord) -> list[str]:
    return [partition.name, partition.fingerprint, partition.code_version]


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()


def _unique(lineage: Iterable[Lineage]) -> tuple[Lineage, ...]:
    """Lineage without repeats (a component given twice as an input is one edge)."""
    return tuple(dict.fromkeys(lineage))

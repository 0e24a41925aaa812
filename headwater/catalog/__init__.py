"""The catalog: SQL tables, queries, migrations and leases."""

from headwater.catalog.catalog import (
    Catalog,
    Checkpoint,
    ComponentRecord,
    Failure,
    Lineage,
    PartitionRecord,
    RunRecord,
    StoredPartition,
)

__all__ = [
    "Catalog",
    "Checkpoint",
    "ComponentRecord",
    "Failure",
    "Lineage",
    "PartitionRecord",
    "RunRecord",
    "StoredPartition",
]

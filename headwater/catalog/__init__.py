"""The catalog: SQL tables, queries, migrations and leases."""

from headwater.catalog.catalog import (
    Catalog,
    ComponentRecord,
    Failure,
    PartitionRecord,
    RunRecord,
    StoredPartition,
)

__all__ = [
    "Catalog",
    "ComponentRecord",
    "Failure",
    "PartitionRecord",
    "RunRecord",
    "StoredPartition",
]

"""A dataflow through the client: a partition-wise transform recomputes only the partition
whose input changed, after the upstream's refresh propagates to it, and its lineage says which
input partition (at which fingerprint) each of its partitions came from."""

from __future__ import annotations

from collections.abc import Callable

from headwater.client import Client
from headwater.client.models import (
    Component,
    LineageInput,
    PartitionedDefinition,
    PartitionLineage,
    TransformDefinition,
)


def test_a_partition_wise_transform_follows_its_input_and_records_lineage(
    hw: Client, flow: tuple[str, str], objects: Callable[..., str]
) -> None:
    ds, df = flow
    hw.create_component(
        ds,
        df,
        Component(
            id="orders",
            partitioned=PartitionedDefinition(code=objects({"a": ("1", 3), "b": ("1", 2)})),
        ),
    )
    hw.create_component(
        ds,
        df,
        Component(
            id="doubled",
            transform=TransformDefinition(
                inputs=["orders"],
                sql="SELECT id * 2 AS twice, tag FROM orders",
                partition_wise=True,
            ),
        ),
    )

    def refresh_and_follow() -> tuple[int, int]:
        """Refresh orders; the transform's run it queued: (changed, unchanged)."""
        upstream = hw.wait_for_run(hw.refresh_component(ds, df, "orders").id, timeout=60)
        [run] = hw.list_triggered_runs(upstream.id)
        run = hw.wait_for_run(run.id, timeout=60)
        assert run.status == "succeeded" and run.plan is not None, run
        return run.plan.changed + run.plan.added, run.plan.unchanged

    assert refresh_and_follow() == (2, 0)
    objects({"a": ("1", 3), "b": ("2", 4)})  # only b changes
    assert refresh_and_follow() == (1, 1)

    records = hw.get_records(ds, df, "doubled").rows
    assert sorted((r["tag"], r["twice"]) for r in records) == sorted(
        [("a", 2 * i) for i in range(3)] + [("b", 2 * i) for i in range(4)]
    )
    assert hw.get_lineage(ds, df, "doubled") == [
        PartitionLineage(
            partition=name,
            inputs=[LineageInput(component="orders", partition=name, fingerprint=fingerprint)],
        )
        for name, fingerprint in (("a", "1"), ("b", "2"))
    ]
    assert hw.get_lineage(ds, df, "orders") == []  # a read connector has no inputs

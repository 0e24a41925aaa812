"""Every problem of a definition is found at plan time, named by the resource's path, and all
of them are reported in one PlanError before any call that writes: the server is unchanged."""

from __future__ import annotations

import pytest

from headwater.client import Client
from headwater.client.applier import DataServiceApplier, apply_all
from headwater.client.definitions import (
    Connection,
    Credential,
    Dataflow,
    DataService,
    PartitionedDefinition,
    ProcessorDefinition,
    ReadConnector,
    Schedule,
    Transform,
    WriteConnector,
)
from headwater.client.plan import PlanError
from tests.declarative.conftest import SOURCE, Recording, sales, snapshot


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_WH", "s3cret")


def partitioned(id: str, **options: object) -> ReadConnector:
    return ReadConnector(id=id, partitioned=PartitionedDefinition(code=SOURCE), **options)  # type: ignore[arg-type]


def test_every_error_is_listed_by_path_and_nothing_is_changed(
    recorded: tuple[Client, Recording],
) -> None:
    hw, recording = recorded
    DataServiceApplier(hw).apply(sales())
    before = snapshot(hw, "sales")
    recording.calls.clear()

    broken = DataService(
        id="sales",
        credentials=[
            Credential(name="wh", env="HW_TEST_WH"),
            Credential(name="wh", env="HW_TEST_WH"),
            Credential(name="fresh", env="HW_TEST_UNSET"),
        ],
        connections=[
            Connection(id="warehouse", credential="wh"),
            Connection(id="warehouse", credential="wh"),
            Connection(id="other", credential="nowhere"),
        ],
        dataflows=[
            Dataflow(
                id="daily",
                components=[
                    partitioned("orders", connection="warehouse"),
                    partitioned("orders"),
                    partitioned("lookup", connection="absent"),
                    Transform(id="a", inputs=["c"], sql="SELECT * FROM c"),
                    Transform(id="b", inputs=["a"], sql="SELECT * FROM a"),
                    Transform(id="c", inputs=["b"], sql="SELECT * FROM b"),
                    Transform(id="self", inputs=["self"], sql="SELECT * FROM self"),
                    Transform(id="dangling", inputs=["ghost"], sql="SELECT * FROM ghost"),
                    Transform(id="unparsed", inputs=["orders"], sql="SELEC * FROM orders"),
                    Transform(id="sneaky", inputs=["orders"], sql="SELECT * FROM lookup"),
                    Transform(id="twice", inputs=["orders", "orders"], sql="SELECT 1"),
                    Transform(id="pyfail", inputs=["orders"], python="def transform(:\n"),
                    partitioned("badcode").model_copy(
                        update={"partitioned": PartitionedDefinition(code="def list_objects(")}
                    ),
                    ReadConnector(
                        id="processor",
                        connection="warehouse",
                        processor=ProcessorDefinition(
                            statement="return []", output_schema={"n": "nope"}, input="orders"
                        ),
                    ),
                    partitioned("timed", schedule=Schedule(cron="every day")),
                    WriteConnector(
                        id="out",
                        input="big",
                        files={"path": "memory://x"},  # type: ignore[arg-type]
                    ),
                ],
            ),
            Dataflow(id="daily"),
        ],
    )
    with pytest.raises(PlanError) as raised:
        DataServiceApplier(hw).apply(broken)
    errors = raised.value.errors
    expected = [
        "sales/daily: 2 dataflows have this id; ids must be unique",
        "sales/warehouse: 2 connections have this id; ids must be unique",
        "sales/wh: 2 credentials have this id; ids must be unique",
        "sales/fresh: the credential has no value (environment variable HW_TEST_UNSET is unset "
        "or empty) and the server has none; set it, or store the secret first",
        "sales/other: the connection uses credential 'nowhere', which neither the definition "
        "declares nor the server has",
        "sales/daily/orders: 2 components have this id; ids must be unique",
        "sales/daily/lookup: the component uses connection 'absent', which neither the "
        "definition declares nor the server has",
        # (the server's own checks, worded by the server)
        "sales/daily/unparsed: the SQL of transform 'unparsed' is not valid: ",
        "sales/daily/sneaky: the SQL of transform 'sneaky' reads lookup, which is not an input",
        "sales/daily/pyfail: the code of component 'pyfail' has a syntax error at line 1",
        "sales/daily/badcode: the code of component 'badcode' has a syntax error at line 1",
        "sales/daily/processor: output schema column 'n': unknown type 'nope'",
        "sales/daily/timed: the schedule of component 'timed' has an invalid cron expression "
        "'every day'",
        "sales/daily/dangling: it reads 'ghost', which the definition does not declare",
        "sales/daily/twice: it names input 'orders' more than once",
        "sales/daily/out: it reads 'big', which the definition does not declare, so the "
        "server's is deleted: declare it, or apply with delete=False",
        "sales/daily: the components' inputs form a cycle: a -> c -> b -> a (each reads the "
        "next); a dataflow's graph must be acyclic",
        "sales/daily: the components' inputs form a cycle: self -> self (each reads the next); "
        "a dataflow's graph must be acyclic",
    ]
    for part in expected:
        assert any(e.startswith(part) for e in errors), f"{part}\n not in:\n" + "\n".join(errors)
    assert len(errors) == len(expected), "\n".join(errors)
    message = str(raised.value)
    assert message.startswith(f"the definition cannot be applied ({len(errors)} error(s); ")
    assert all(f"\n  - {e}" in message for e in errors)

    assert recording.writes() == []
    assert snapshot(hw, "sales") == before


def test_without_deletions_the_servers_resources_may_be_used(hw: Client) -> None:
    DataServiceApplier(hw).apply(sales())
    reuses = DataService(
        id="sales",
        description="orders and invoices",
        connections=[Connection(id="second", credential="wh")],
        dataflows=[
            Dataflow(
                id="daily",
                components=[
                    Transform(id="more", inputs=["big"], sql="SELECT * FROM big"),
                    partitioned("extra", connection="warehouse"),
                ],
            )
        ],
    )
    plan = DataServiceApplier(hw).apply(reuses, delete=False)
    assert str(plan).splitlines() == [
        "+ create sales/second (connection)",
        "+ create sales/daily/extra (partitioned)",
        "+ create sales/daily/more (transform)",  # (after big, a component kept as it is)
        "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete, 2 unchanged.",
    ]
    with pytest.raises(PlanError) as raised:
        DataServiceApplier(hw).plan(reuses)
    assert raised.value.errors == [
        "sales/second: the connection uses credential 'wh', which the definition does not "
        "declare, so the server's is deleted: declare it, or apply with delete=False",
        "sales/daily/extra: the component uses connection 'warehouse', which the definition "
        "does not declare, so the server's is deleted: declare it, or apply with delete=False",
        "sales/daily/more: it reads 'big', which the definition does not declare, so the "
        "server's is deleted: declare it, or apply with delete=False",
    ]
    cycle = reuses.model_copy(
        update={
            "dataflows": [
                Dataflow(
                    id="daily",
                    components=[Transform(id="orders", inputs=["big"], sql="SELECT * FROM big")],
                )
            ]
        }
    )
    with pytest.raises(PlanError, match=r"cycle: orders -> big -> orders"):
        DataServiceApplier(hw).plan(cycle, delete=False)


def test_several_targets_are_all_planned_before_any_is_applied(hw: Client) -> None:
    hw.create_data_service({"id": "good"})
    good = DataService(id="good", description="changed")
    bad = DataService(id="bad", dataflows=[Dataflow(id="d", components=[partitioned("x")] * 2)])
    with pytest.raises(PlanError) as raised:
        apply_all(hw, [good, bad, ("good", Dataflow(id="d")), ("good", Dataflow(id="d"))])
    assert raised.value.errors == [
        "bad/d/x: 2 components have this id; ids must be unique",
        "good/d: declared more than once",
    ]
    assert [(d.id, d.description) for d in hw.list_data_services()] == [("good", None)]
    assert hw.list_dataflows("good") == []

"""Appliers against the real app: the plan they print, the calls they make in dependency order,
and that applying the same definition again changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater.client import Client
from headwater.client.applier import DataflowApplier, DataServiceApplier
from headwater.client.definitions import (
    ComponentDefinition,
    Connection,
    Credential,
    Dataflow,
    DataService,
    PartitionedDefinition,
    ProcessorDefinition,
    ReadConnector,
    Transform,
)
from headwater.client.plan import ApplyError, PlanError
from headwater.client.planner import declared
from tests.declarative.conftest import SOURCE, Recording, daily, sales, snapshot

ALL_KINDS = [
    "+ create sales/daily/orders (partitioned)",
    "+ create sales/daily/customers (partitioned)",
    "+ create sales/daily/big (transform)",
    "+ create sales/daily/joined (transform)",
    "+ create sales/daily/counted (processor)",
    "+ create sales/daily/out (write)",
]


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_WH", "s3cret")


def with_components(
    ds: DataService, *components: ComponentDefinition, drop: tuple[str, ...] = ()
) -> DataService:
    """`ds` with components of dataflow `daily` replaced (by id) or added, and some dropped."""
    flow = daily(ds)
    by_id = {c.id: c for c in flow.components if c.id not in drop}
    by_id.update({c.id: c for c in components})
    flows = [d for d in ds.dataflows if d.id != "daily"]
    return ds.model_copy(
        update={"dataflows": [*flows, flow.model_copy(update={"components": list(by_id.values())})]}
    )


def changed(definition: Any, **values: Any) -> Any:
    return type(definition).model_validate({**definition.model_dump(), **values})


def component(ds: DataService, id: str) -> ComponentDefinition:
    return next(c for c in daily(ds).components if c.id == id)


def test_a_definition_is_created_then_applying_it_again_changes_nothing(
    recorded: tuple[Client, Recording],
) -> None:
    hw, recording = recorded
    plan = DataServiceApplier(hw).apply(sales())
    assert str(plan).splitlines() == [
        "+ create sales (data service)",
        "+ create sales/wh (credential)",
        "+ create sales/warehouse (connection)",
        "+ create sales/daily (dataflow)",
        *ALL_KINDS,
        "Plan: 10 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.",
    ]
    assert [s.call for s in plan.steps] == ["create"] * 10
    for definition in daily(sales()).components:
        stored = hw.get_component("sales", "daily", definition.id)
        assert declared(stored) == declared(definition.to_model()), definition.id
    assert hw.get_connection("sales", "warehouse").credential == "wh"
    assert hw.verify_credential("sales", "wh", "s3cret")
    assert not hw.verify_credential("sales", "wh", "s3cret ")

    before = snapshot(hw, "sales")
    recording.calls.clear()
    again = DataServiceApplier(hw).apply(sales())
    assert not again.changed and again.steps == []
    assert again.counts == {"create": 0, "update": 0, "replace": 0, "delete": 0, "unchanged": 10}
    assert str(again).splitlines() == [
        "No changes: the server matches the definition.",
        "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 10 unchanged.",
    ]
    assert recording.calls and recording.writes() == []
    assert snapshot(hw, "sales") == before


def test_a_dry_run_plans_without_changing_anything(recorded: tuple[Client, Recording]) -> None:
    hw, recording = recorded
    plan = DataServiceApplier(hw).apply(sales(), dry_run=True)
    assert plan.counts["create"] == 10 and len(plan.steps) == 10
    assert recording.writes() == []
    assert [d.id for d in hw.list_data_services()] == []


def test_changed_fields_are_planned_as_updates_and_applied(hw: Client) -> None:
    DataServiceApplier(hw).apply(sales())
    ds = sales(
        description="v2",
        connections=[Connection(id="warehouse", settings={"host": "db2"}, credential="wh")],
    )
    ds = with_components(
        ds,
        changed(component(ds, "big"), sql="SELECT id, total FROM orders"),
        changed(
            component(ds, "joined"),
            python="def transform(orders, customers):\n    return customers\n",
        ),
        changed(component(ds, "customers"), name="Customers"),
    )
    plan = DataServiceApplier(hw).apply(ds)
    assert str(plan).splitlines() == [
        "~ update sales (data service)",
        '    - description: "orders and invoices"',
        '    + description: "v2"',
        "~ update sales/warehouse (connection)",
        '    - settings.host: "db.internal"',
        '    + settings.host: "db2"',
        "~ update sales/daily/customers (partitioned)",
        '    - name: "customers"',
        '    + name: "Customers"',
        "~ update sales/daily/big (transform)",
        '    - transform.sql: "SELECT * FROM orders WHERE total > 100"',
        '    + transform.sql: "SELECT id, total FROM orders"',
        "~ update sales/daily/joined (transform)",
        "      transform.python:",
        "        @@ -1,2 +1,2 @@",
        "         def transform(orders, customers):",
        "        -    return orders",
        "        +    return customers",
        "Plan: 0 to create, 5 to update, 0 to replace, 0 to delete, 5 unchanged.",
    ]
    assert hw.get_data_service("sales").description == "v2"
    assert hw.get_connection("sales", "warehouse").settings == {"host": "db2"}
    big = hw.get_component("sales", "daily", "big").transform
    assert big is not None and big.sql == "SELECT id, total FROM orders"
    assert hw.get_component("sales", "daily", "customers").name == "Customers"
    assert not DataServiceApplier(hw).plan(ds).changed
    # a name set to the id, or left out, is the same name
    ds = with_components(ds, changed(component(ds, "big"), name="big"))
    assert not DataServiceApplier(hw).plan(ds).changed


def test_undeclared_resources_are_deleted_readers_first_unless_delete_is_false(
    recorded: tuple[Client, Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    hw, recording = recorded
    monkeypatch.setenv("HW_TEST_OLD", "old")
    extra = sales(
        credentials=[*sales().credentials, Credential(name="old_cred", env="HW_TEST_OLD")],
        connections=[*sales().connections, Connection(id="legacy", credential="old_cred")],
        dataflows=[
            *sales().dataflows,
            Dataflow(
                id="weekly",
                components=[
                    ReadConnector(
                        id="orders",
                        connection="legacy",
                        partitioned=PartitionedDefinition(code=SOURCE),
                    )
                ],
            ),
        ],
    )
    extra = with_components(
        extra,
        Transform(id="extra2", inputs=["extra1"], sql="SELECT * FROM extra1"),
        Transform(id="extra1", inputs=["big"], sql="SELECT * FROM big"),
    )
    DataServiceApplier(hw).apply(extra)
    before = snapshot(hw, "sales")

    recording.calls.clear()
    kept = DataServiceApplier(hw).apply(sales(), delete=False)
    assert not kept.changed and recording.writes() == []
    assert snapshot(hw, "sales") == before

    plan = DataServiceApplier(hw).apply(sales())
    assert str(plan).splitlines() == [
        "- delete sales/daily/extra2 (transform)",
        "- delete sales/daily/extra1 (transform)",
        "- delete sales/weekly (dataflow): with its 1 component(s)",
        "- delete sales/legacy (connection)",
        "- delete sales/old_cred (credential)",
        "Plan: 0 to create, 0 to update, 0 to replace, 5 to delete, 10 unchanged.",
    ]
    base = "/api/v1/data-services/sales"
    assert recording.writes() == [
        ("DELETE", f"{base}/dataflows/daily/components/extra2"),
        ("DELETE", f"{base}/dataflows/daily/components/extra1"),
        ("DELETE", f"{base}/dataflows/weekly"),
        ("DELETE", f"{base}/connections/legacy"),
        ("DELETE", f"{base}/credentials/old_cred"),
    ]
    after = snapshot(hw, "sales")
    assert after["dataflows"]["daily"]["components"] == [
        c for c in before["dataflows"]["daily"]["components"] if not c["id"].startswith("extra")
    ]
    assert [c.name for c in hw.list_credentials("sales")] == ["wh"]
    assert [d.id for d in hw.list_dataflows("sales")] == ["daily"]
    assert not DataServiceApplier(hw).plan(sales()).changed


def test_a_component_whose_kind_changes_is_replaced_with_its_readers(hw: Client) -> None:
    DataServiceApplier(hw).apply(sales())
    big = ReadConnector(
        id="big",
        processor=ProcessorDefinition(
            statement="return [{'id': 1, 'total': 2}]",
            output_schema={"id": "int", "total": "int"},
            processing="bulk",
            input="orders",
        ),
    )
    ds = with_components(sales(), big)
    plan = DataServiceApplier(hw).apply(ds)
    assert str(plan).splitlines() == [
        "-/+ replace sales/daily/big (transform -> processor): its kind changes; its stored "
        "data is deleted",
        "-/+ replace sales/daily/counted (processor): it reads big, which is replaced; its data "
        "is deleted",
        "-/+ replace sales/daily/out (write): it reads big, which is replaced; its data is deleted",
        "Plan: 0 to create, 0 to update, 3 to replace, 0 to delete, 7 unchanged.",
    ]
    calls = [(s.call, s.change.path.rsplit("/", 1)[1]) for s in plan.steps]
    assert calls == [
        ("delete", "out"),
        ("delete", "counted"),
        ("delete", "big"),
        ("create", "big"),
        ("create", "counted"),
        ("create", "out"),
    ]
    assert hw.get_component("sales", "daily", "big").kind == "processor"
    assert {c.id for c in hw.list_components("sales", "daily")} == {
        "orders", "customers", "big", "joined", "counted", "out"
    }  # fmt: skip
    assert not DataServiceApplier(hw).plan(ds).changed

    # without deletions, an undeclared reader cannot be recreated: nothing is done
    hw.create_component(
        "sales", "daily", Transform(id="manual", inputs=["big"], sql="SELECT * FROM big").to_model()
    )
    before = snapshot(hw, "sales")
    with pytest.raises(PlanError) as error:
        DataServiceApplier(hw).apply(sales(), delete=False)
    assert error.value.errors == [
        "sales/daily/big: its kind changes (processor -> transform), so it is deleted and "
        "created again with the components reading it, which include undeclared manual: "
        "declare them, or apply with delete=True"
    ]
    assert snapshot(hw, "sales") == before


def test_inputs_can_be_reversed_in_one_apply(hw: Client) -> None:
    """Updating `a` before `b` would make a cycle on the server: inputs go first."""
    hw.create_data_service({"id": "sales"})

    def processor(id: str, input: str | None) -> ReadConnector:
        rows = [] if input else [{"n": 1}]
        return ReadConnector(
            id=id,
            processor=ProcessorDefinition(
                statement="return INPUT_DATA",
                output_schema={"n": "int"},
                processing="bulk",
                input=input,
                input_rows=rows,
            ),
        )

    first = Dataflow(id="daily", components=[processor("a", None), processor("b", "a")])
    second = Dataflow(id="daily", components=[processor("a", "b"), processor("b", None)])
    DataflowApplier(hw).apply("sales", first)
    plan = DataflowApplier(hw).apply("sales", second)
    assert [s.change.path for s in plan.steps] == ["sales/daily/b", "sales/daily/a"]
    graph = hw.get_dataflow_graph("sales", "daily")
    assert [(e.source, e.target) for e in graph.edges] == [("b", "a")]


def test_credentials_are_compared_without_the_server_returning_them(
    recorded: tuple[Client, Recording], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hw, recording = recorded
    DataServiceApplier(hw).apply(sales())

    monkeypatch.delenv("HW_TEST_WH")
    recording.calls.clear()
    kept = DataServiceApplier(hw).apply(sales())
    assert str(kept).splitlines()[0] == (
        "  unchanged sales/wh (credential): value not given (environment variable HW_TEST_WH "
        "is unset or empty); kept"
    )
    assert not kept.changed and recording.writes() == []

    monkeypatch.setenv("HW_TEST_WH", "rotated")
    plan = DataServiceApplier(hw).apply(sales())
    assert str(plan).splitlines()[0] == "~ update sales/wh (credential): its secret changes"
    assert "rotated" not in str(plan) and "rotated" not in repr(plan)
    assert hw.verify_credential("sales", "wh", "rotated")

    path = tmp_path / "wh.txt"
    path.write_text("rotated\n")
    by_file = sales(credentials=[Credential(name="wh", file=str(path))])
    assert not DataServiceApplier(hw).plan(by_file).changed

    missing = sales(credentials=[*by_file.credentials, Credential(name="new", env="HW_TEST_NO")])
    with pytest.raises(PlanError) as error:
        DataServiceApplier(hw).apply(missing)
    assert error.value.errors == [
        "sales/new: the credential has no value (environment variable HW_TEST_NO is unset or "
        "empty) and the server has none; set it, or store the secret first"
    ]


def test_a_dataflow_alone_is_applied_to_its_data_service(
    hw: Client, recorded: tuple[Client, Recording]
) -> None:
    hw.create_data_service({"id": "sales"})
    dataflow = Dataflow(
        id="daily",
        components=[
            ReadConnector(id="orders", partitioned=PartitionedDefinition(code=SOURCE)),
            Transform(id="big", inputs=["orders"], sql="SELECT * FROM orders"),
        ],
    )
    plan = DataflowApplier(hw).apply("sales", dataflow)
    assert str(plan).splitlines() == [
        "+ create sales/daily (dataflow)",
        "+ create sales/daily/orders (partitioned)",
        "+ create sales/daily/big (transform)",
        "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.",
    ]
    manual = ReadConnector(id="manual", partitioned=PartitionedDefinition(code=SOURCE))
    hw.create_component("sales", "daily", manual.to_model())
    assert not DataflowApplier(hw).apply("sales", dataflow, delete=False).changed

    other, recording = recorded
    dry = DataflowApplier(other).apply("sales", dataflow, dry_run=True)
    assert str(dry).splitlines()[0] == "- delete sales/daily/manual (partitioned)"
    assert recording.writes() == []
    DataflowApplier(hw).apply("sales", dataflow)
    assert [c.id for c in hw.list_components("sales", "daily")] == ["big", "orders"]

    with pytest.raises(PlanError, match="nope: the data service does not exist"):
        DataflowApplier(hw).apply("nope", dataflow)
    uses = Dataflow(
        id="daily",
        components=[
            ReadConnector(
                id="orders", connection="warehouse", partitioned=PartitionedDefinition(code=SOURCE)
            )
        ],
    )
    with pytest.raises(PlanError) as error:
        DataflowApplier(hw).apply("sales", uses)
    assert error.value.errors == [
        "sales/daily/orders: the component uses connection 'warehouse', which the data "
        "service does not have"
    ]


def test_a_refused_step_is_an_apply_error_naming_it(connect: Callable[..., Client]) -> None:
    reader = connect(read_only=True)
    with pytest.raises(ApplyError) as error:
        DataServiceApplier(reader).apply(DataService(id="sales", dataflows=[Dataflow(id="d")]))
    assert error.value.done == 0
    assert error.value.step.path == "sales"
    assert str(error.value).startswith(
        "create of sales (data service) was refused after 0 of 2 step(s) were applied: "
    )

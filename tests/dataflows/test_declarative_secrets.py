"""Dataflows: plans and exports of the declarative API, against the real app (SQLite and
PostgreSQL catalogs): no secret shows, exported credentials stay apart, and a component that
reads a write connector is refused at plan time."""

from __future__ import annotations

import pytest

from headwater.client import Client
from headwater.client.applier import DataServiceApplier
from headwater.client.definitions import (
    Credential,
    Dataflow,
    DataService,
    FilesTarget,
    PartitionedDefinition,
    PostgresTarget,
    ReadConnector,
    Transform,
    WriteConnector,
)
from headwater.client.plan import PlanError
from headwater.client.render import download_data_service
from tests.declarative.conftest import SOURCE

PASSWORD = "hunter2-Very-Secret"
URL = f"postgresql://writer:{PASSWORD}@127.0.0.1:5432/test"


def with_table(url: str) -> DataService:
    return DataService(
        id="shop",
        dataflows=[
            Dataflow(
                id="daily",
                components=[
                    ReadConnector(id="orders", partitioned=PartitionedDefinition(code=SOURCE)),
                    WriteConnector(
                        id="table",
                        input="orders",
                        postgres=PostgresTarget(table="orders", url=url),
                    ),
                ],
            )
        ],
    )


def test_a_database_password_is_refused_without_being_quoted(hw: Client) -> None:
    """A URL with a password never reaches a plan or an export: it is refused where it is
    written, and the error does not quote it."""
    with pytest.raises(ValueError, match="holds a URL with a password") as refused:
        with_table(URL)
    assert PASSWORD not in str(refused.value)
    DataServiceApplier(hw).apply(with_table("postgresql://writer@127.0.0.1:5432/test"))
    assert PASSWORD not in download_data_service(hw, "shop")


def test_exported_credentials_read_distinct_variables(
    hw: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_REVIEW_A", "secret-a")
    monkeypatch.setenv("HW_REVIEW_B", "secret-b")
    DataServiceApplier(hw).apply(
        DataService(
            id="shop",
            credentials=[
                Credential(name="wh.prod", env="HW_REVIEW_A"),
                Credential(name="wh_prod", env="HW_REVIEW_B"),
            ],
        )
    )
    source = download_data_service(hw, "shop")
    names = [line.split('env="')[1].split('"')[0] for line in source.splitlines() if "env=" in line]
    assert len(names) == 2
    assert len(set(names)) == 2, names


def test_a_transform_reading_a_write_connector_is_refused_at_plan_time(hw: Client) -> None:
    definition = DataService(
        id="shop",
        dataflows=[
            Dataflow(
                id="daily",
                components=[
                    ReadConnector(id="orders", partitioned=PartitionedDefinition(code=SOURCE)),
                    WriteConnector(id="out", input="orders", files=FilesTarget(path="memory://o")),
                    Transform(id="again", inputs=["out"], sql="SELECT * FROM out"),
                ],
            )
        ],
    )
    with pytest.raises(PlanError, match="shop/daily/again"):
        DataServiceApplier(hw).plan(definition)

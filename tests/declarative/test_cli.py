"""`headwater apply` and `headwater export` against the app served by uvicorn, configured as a
user would: HEADWATER_HOSTNAME and an access key in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from headwater.apply_cli import register
from headwater.client import Client
from headwater.client.render import download_data_service
from headwater.server.state import Server

runner = CliRunner()
app = typer.Typer(rich_markup_mode=None)
register(app)

DEFINITION = '''
from headwater.client.definitions import (
    Connection, Credential, Dataflow, DataService, PartitionedDefinition, ReadConnector, Transform,
)

SOURCE = """
def list_objects(context, metadata):
    return []

def read_records(context, metadata):
    return []
"""

daily = Dataflow(
    id="daily",
    components=[
        ReadConnector(id="orders", connection="warehouse",
                      partitioned=PartitionedDefinition(code=SOURCE)),
        Transform(id="big", inputs=[{big_input!r}], sql="SELECT * FROM orders"),
    ],
)
data_service = DataService(
    id="sales",
    credentials=[Credential(name="wh", env="HW_TEST_WH")],
    connections=[Connection(id="warehouse", credential="wh")],
    dataflows=[daily],
)
sales = data_service  # an alias is the same data service
'''


@pytest.fixture
def served(
    live: tuple[int, Server, Callable[..., Client]], monkeypatch: pytest.MonkeyPatch
) -> Client:
    """The live server, in the environment the commands read; returns a client of it."""
    port, state, make = live
    key = state.keys.create()
    monkeypatch.setenv("HEADWATER_HOSTNAME", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HEADWATER_ACCESS_KEY_ID", key.access_key)
    monkeypatch.setenv("HEADWATER_SECRET_ACCESS_KEY", key.secret_key.reveal())
    monkeypatch.setenv("HW_TEST_WH", "s3cret")
    client: Client = make(scheme="http")
    return client


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def definition(tmp_path: Path, big_input: str = "orders", name: str = "sales.py") -> Path:
    path = tmp_path / name
    path.write_text(DEFINITION.format(big_input=big_input))
    return path


@pytest.mark.parametrize("name", ["apply", "export"])
def test_each_command_has_help_with_an_example(name: str) -> None:
    code, out, _ = invoke(name, "--help")
    assert code == 0
    assert f"Example: headwater {name} " in out


def test_apply_prints_the_plan_then_applies_it(served: Client, tmp_path: Path) -> None:
    path = definition(tmp_path)
    code, out, err = invoke("apply", str(path), "--dry-run")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "+ create sales (data service)",
        "+ create sales/wh (credential)",
        "+ create sales/warehouse (connection)",
        "+ create sales/daily (dataflow)",
        "+ create sales/daily/orders (partitioned)",
        "+ create sales/daily/big (transform)",
        "Plan: 6 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.",
        "Dry run: nothing was changed.",
    ]
    assert served.list_data_services() == []

    code, out, _ = invoke("apply", str(path))
    assert code == 0 and out.endswith("0 unchanged.\nApplied.\n")
    assert [c.id for c in served.list_components("sales", "daily")] == ["big", "orders"]
    code, out, _ = invoke("apply", str(path))
    assert out.splitlines()[0] == "No changes: the server matches the definition."

    served.create_component(
        "sales", "daily", {"id": "manual", "transform": {"inputs": ["big"], "sql": "SELECT 1"}}
    )
    code, out, _ = invoke("apply", str(path), "--no-delete")
    assert code == 0 and "No changes" in out
    code, out, _ = invoke("apply", str(path))
    assert out.splitlines()[0] == "- delete sales/daily/manual (transform)"


def test_apply_reports_every_problem_in_one_message_and_exits_1(
    served: Client, tmp_path: Path
) -> None:
    code, out, err = invoke("apply", str(definition(tmp_path, big_input="big")))
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 3 and "Traceback" not in err
    assert lines[0] == "error: the definition cannot be applied (2 error(s); nothing was changed):"
    assert lines[1].startswith("  - sales/daily/big: the SQL of transform 'big' reads orders")
    assert lines[2] == (
        "  - sales/daily: the components' inputs form a cycle: big -> big (each reads the "
        "next); a dataflow's graph must be acyclic"
    )
    assert served.list_data_services() == []

    broken = tmp_path / "broken.py"
    broken.write_text(
        "from headwater.client.definitions import Dataflow\n\nx = 1\nDataflow(id='a b')\n"
    )
    code, _, err = invoke("apply", str(broken))
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"error: {broken} (line 4): ValidationError: 1 validation error for ")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    code, _, err = invoke("apply", str(empty))
    assert code == 1
    assert err.startswith(f"error: {empty} defines no DataService or Dataflow at module level")
    code, _, err = invoke("apply", str(tmp_path / "missing.py"))
    assert (code, err) == (1, f"error: no definition file at {tmp_path / 'missing.py'}\n")


def test_a_file_of_dataflows_is_applied_to_its_data_service(served: Client, tmp_path: Path) -> None:
    served.create_data_service({"id": "sales"})
    served.create_data_service({"id": "other"})
    path = tmp_path / "flows.py"
    path.write_text(
        textwrap.dedent(
            """
            from headwater.client.definitions import Dataflow, ProcessorDefinition, ReadConnector

            rows = ReadConnector(id="rows", processor=ProcessorDefinition(
                statement="return INPUT_DATA", output_schema={"n": "int"}, processing="bulk",
                input_rows=[{"n": 1}]))
            first = Dataflow(id="first", components=[rows])
            second = Dataflow(id="second")
            """
        )
    )
    code, _, err = invoke("apply", str(path))
    assert code == 1 and "defines Dataflow objects but no `data_service_id`" in err
    code, out, _ = invoke("apply", str(path), "--data-service", "other")
    assert code == 0, out
    assert [d.id for d in served.list_dataflows("other")] == ["first", "second"]
    path.write_text(path.read_text() + 'data_service_id = "sales"\n')
    code, out, _ = invoke("apply", str(path))
    assert code == 0 and "+ create sales/first/rows (processor)" in out
    assert [d.id for d in served.list_dataflows("sales")] == ["first", "second"]


def test_export_writes_a_file_that_applies_itself(served: Client, tmp_path: Path) -> None:
    assert invoke("apply", str(definition(tmp_path)))[0] == 0
    code, out, _ = invoke("export", "sales")
    assert code == 0 and out == download_data_service(served, "sales")

    output = tmp_path / "exported.py"
    code, _, err = invoke("export", "sales", "daily", "--output", str(output))
    assert (code, err) == (0, f"wrote {output}\n")
    assert 'data_service_id = "sales"' in output.read_text()

    env = dict(os.environ)
    done = subprocess.run(
        [sys.executable, str(output), "--dry-run"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == [
        "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 3 unchanged.",
        "Dry run: nothing was changed.",
    ]
    served.delete_component("sales", "daily", "big")
    done = subprocess.run([sys.executable, str(output)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "+ create sales/daily/big (transform)"
    assert done.stdout.splitlines()[-1] == "Applied."
    assert [c.id for c in served.list_components("sales", "daily")] == ["big", "orders"]

    env["HEADWATER_ACCESS_KEY_ID"] = "HWNOTAKEY0000000000"
    done = subprocess.run([sys.executable, str(output)], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr

    code, _, err = invoke("export", "nope")
    assert code == 1 and err.startswith("error: GET /api/v1/data-services/nope: 404 not_found")


def test_a_refused_step_is_reported_after_the_plan(
    live: tuple[int, Server, Callable[..., Client]],
    served: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    reader = live[1].keys.create(read_only=True)
    monkeypatch.setenv("HEADWATER_ACCESS_KEY_ID", reader.access_key)
    monkeypatch.setenv("HEADWATER_SECRET_ACCESS_KEY", reader.secret_key.reveal())
    code, out, err = invoke("apply", str(definition(tmp_path)))
    assert code == 1
    assert out.splitlines()[0] == "+ create sales (data service)"
    assert err.startswith(
        "error: create of sales (data service) was refused after 0 of 6 step(s) were applied: "
    )
    assert served.list_data_services() == []

"""Rendered definition files: lint-clean Python that, run, defines exactly what was exported,
and applied to a fresh server makes the same."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headwater.client import Client
from headwater.client.applier import DataflowApplier, DataServiceApplier
from headwater.client.definitions import (
    Connection,
    CsvOptions,
    Dataflow,
    DataService,
    PartitionedDefinition,
    PartitionedSettings,
    PostgresTarget,
    ProcessorDefinition,
    ReadConnector,
    RetrySettings,
    Schedule,
    StreamDefinition,
    TaskDefinition,
    Transform,
    WriteConnector,
)
from headwater.client.planner import declared
from headwater.client.render import (
    credential_env,
    download_data_service,
    download_dataflow,
    render_data_service,
    render_dataflow,
)
from tests.declarative.conftest import SOURCE, sales

REPO = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


def lint_clean(path: Path) -> None:
    """`ruff format --check` and `ruff check` pass on `path`, with the repository's config."""
    assert RUFF.exists(), f"ruff is not installed beside {sys.executable}"
    config = ["--config", str(REPO / "pyproject.toml"), "--no-cache"]
    for command in (["format", "--check", "--diff"], ["check"]):
        done = subprocess.run(
            [str(RUFF), *command, *config, str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"ruff {command[0]}:\n{done.stdout}{done.stderr}"


def run(source: str, path: Path) -> dict[str, Any]:
    """Write `source` to `path`, check it is lint-clean, and run it (not as __main__)."""
    path.write_text(source, encoding="utf-8")
    lint_clean(path)
    return runpy.run_path(str(path))


def state(client: Client, ds: str) -> dict[str, Any]:
    """What a data service declares on a server, without what the server fills in."""
    return {
        "data_service": declared(client.get_data_service(ds)),
        "credentials": [c.name for c in client.list_credentials(ds)],
        "connections": [declared(c) for c in client.list_connections(ds)],
        "dataflows": {
            d.id: (declared(d), [declared(c) for c in client.list_components(ds, d.id)])
            for d in client.list_dataflows(ds)
        },
    }


def weekly() -> Dataflow:
    """A dataflow of the other kinds and settings: a task, a stream, a Postgres write, nested
    settings."""
    return Dataflow(
        id="weekly",
        name="Weekly load",
        description="the \"weekly\" load, with 'quotes'",
        components=[
            ReadConnector(
                id="files",
                partitioned=PartitionedDefinition(
                    code=SOURCE,
                    settings=PartitionedSettings(
                        parser="csv",
                        parser_options=CsvOptions(delimiter=";", header=True),
                        retry=RetrySettings(attempts=5, backoff_seconds=0.5),
                        widen_types=True,
                    ),
                ),
                schedule=Schedule(interval_seconds=3600),
            ),
            ReadConnector(
                id="job",
                task=TaskDefinition(code=SOURCE, task_type="countdown", inputs={"n": 3}),
            ),
            ReadConnector(
                id="ticks",
                stream=StreamDefinition(
                    code=SOURCE, subject="Ticks", schema="Tick", autocommit_duration_ms=None
                ),
            ),
            WriteConnector(
                id="table",
                input="files",
                connection="warehouse",
                postgres=PostgresTarget(table="public.files", mode="upsert", key=["id"]),
            ),
        ],
    )


def test_an_exported_data_service_makes_the_same_on_a_fresh_server(
    hw: Client, fresh: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HW_TEST_WH", "s3cret")
    original = sales(dataflows=[*sales().dataflows, weekly()])
    DataServiceApplier(hw).apply(original)

    source = download_data_service(hw, "sales")
    assert "# ruff: noqa" not in source  # nothing is too long here
    assert "\ndef list_objects(context, metadata):\n" in source  # code as code
    assert 'Credential(name="wh", env="HEADWATER_CREDENTIAL_SALES_WH")' in source
    assert "s3cret" not in source
    exported = run(source, tmp_path / "sales.py")["data_service"]
    assert isinstance(exported, DataService)

    monkeypatch.setenv("HEADWATER_CREDENTIAL_SALES_WH", "s3cret")
    plan = DataServiceApplier(fresh).apply(exported)
    assert plan.counts["create"] == 15
    assert state(fresh, "sales") == state(hw, "sales")
    assert fresh.verify_credential("sales", "wh", "s3cret")
    assert not DataServiceApplier(fresh).plan(exported).changed
    assert not DataServiceApplier(hw).plan(exported).changed
    assert download_data_service(fresh, "sales") == source


def test_an_exported_dataflow_is_applied_to_its_data_service(
    hw: Client, fresh: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HW_TEST_WH", "s3cret")
    DataServiceApplier(hw).apply(sales())
    source = download_dataflow(hw, "sales", "daily")
    module = run(source, tmp_path / "daily.py")
    assert module["data_service_id"] == "sales"
    assert "applier.main(dataflow, data_service_id=data_service_id)" in source
    assert not DataflowApplier(hw).plan("sales", module["dataflow"]).changed

    fresh.create_data_service({"id": "sales"})
    fresh.put_credential("sales", "wh", "s3cret")
    fresh.create_connection("sales", Connection(id="warehouse", credential="wh").to_model())
    DataflowApplier(fresh).apply("sales", module["dataflow"])
    assert state(fresh, "sales")["dataflows"] == state(hw, "sales")["dataflows"]


TRICKY = {
    "plain": "def f():\n    return 1\n",
    "no_final_newline": "def f():\n    return 1",
    "triple_quotes": 'def f():\n    """A docstring."""\n    return 1\n',
    "many_quotes": 'x = """"""""\ny = ""',
    "backslash_quotes": 'x = r"\\d"\ny = """a"""\n',
    "ends_with_quote": 'x = 1\ny = "a"',
    "trailing_space": "x = 1   \n\ny = 2\n",
    "blank_with_spaces": "x = 1\n    \ny = 2\n",
    "tabs": "def f():\n\treturn 1\n",
    "backslashes": 'import re\nPATTERN = re.compile(r"\\d+\\.\\d*")\nNL = "\\n"\n',
    "backslash_and_unicode": 'S = "caf\\u00e9 \u2013 \u00e9"\n',
    "unicode": "# caf\u00e9 \u2013 \u00e9t\u00e9 \U0001f600 \u0430\u0431\n",
    "crlf": "x = 1\r\ny = 2\r\n",
    "control": "x = '\x0c\x1b'\n",
    "leading_newline": "\n\ndef f():\n    pass\n",
    "long_line": "X = '" + "word " * 30 + "'\n",
    "ends_with_backslash": "x = 1\ny = 2 \\",
    "braces": 'def f(x):\n    return f"{x} {{x}}"\n',
}


@pytest.mark.parametrize("long", [False, True])
def test_any_text_is_rendered_exactly_and_lint_clean(tmp_path: Path, long: bool) -> None:
    texts = {k: v for k, v in TRICKY.items() if long or k != "long_line"}
    components: list[ReadConnector | Transform | WriteConnector] = [
        ReadConnector(id=id, partitioned=PartitionedDefinition(code=code))
        for id, code in texts.items()
    ]
    components.append(
        ReadConnector(
            id="rows",
            description="it's \"quoted\" and 'quoted' \\ back\u00e9",
            processor=ProcessorDefinition(
                statement="return INPUT_DATA",
                output_schema={"n": "int", "caf\u00e9": "string?"},
                processing="bulk",
                input_rows=[
                    {"n": 1, "text": "two\nlines\n", "f": 1e-05, "g": 1e20, "h": 0.1},
                    {"nested": {"a": [1, 2.5, None, True, False, {"b": "c"}]}, "empty": {}},
                ],
            ),
        )
    )
    definition = DataService(
        id="tricky",
        name="Tricky \u2013 names",
        connections=[Connection(id="c", settings={"url": "https://example.com/" + "x" * 120})],
        dataflows=[Dataflow(id="all", components=components)],
    )
    source = render_data_service(definition)
    assert ("# ruff: noqa: E501" in source) == long
    assert run(source, tmp_path / "tricky.py")["data_service"] == definition
    assert '    code="""\\\ndef f():\n    return 1\n""",' in source  # code reads as code
    assert source.count('code="""') + source.count('code=r"""') == len(texts)
    assert '    ""\\"A docstring.""\\"\n' in source
    assert '    code=r"""import re\nPATTERN = re.compile(r"\\d+\\.\\d*")' in source

    flow = render_dataflow("tricky", definition.dataflows[0])
    assert run(flow, tmp_path / "flow.py")["dataflow"] == definition.dataflows[0]


def test_credentials_are_named_after_their_data_service() -> None:
    assert credential_env("sales", "wh") == "HEADWATER_CREDENTIAL_SALES_WH"
    # a name that upper-casing and `_` would not keep apart carries a hash of itself
    assert (
        credential_env("Sales_EU", "wh.prod-1") == "HEADWATER_CREDENTIAL_SALES_EU_WH_PROD_1_02BCC2"
    )
    assert credential_env("sales", "wh_prod") != credential_env("sales", "wh.prod")

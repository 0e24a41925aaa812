"""The `headwater` command, run in-process with typer's runner against a real workspace."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from headwater.cli import app

runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]

GOOD = """
def list_objects(context, metadata):
    for i in range(3):
        yield {"name": f"p{i}", "fingerprint": "1", "is_prefix": False}
def read_records(context, metadata):
    yield {"part": metadata["name"], "n": 1}
"""
PARTLY_BAD = GOOD.replace(
    'yield {"part"', 'if metadata["name"] == "p1": raise KeyError("x")\n    yield {"part"'
)


def hw(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_every_command_has_help_with_an_example() -> None:
    assert {"run", "partitions", "runs", "schema", "preview", "query", "components"} <= set(
        COMMANDS
    )
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example: headwater " + name in result.stdout, f"{name} --help has no example"


@pytest.mark.parametrize("name", ["run", "refresh", "reset-checkpoint"])
def test_every_processor_command_has_help_with_an_example(name: str) -> None:
    result = runner.invoke(app, ["processor", name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: headwater processor " + name in result.stdout


def test_run_prints_plan_and_outcome(home: Path, write_connector) -> None:
    path = write_connector(GOOD)
    code, out, _ = hw(home, "run", str(path))
    assert code == 0
    assert "plan: 3 added, 0 changed, 0 removed, 0 unchanged" in out
    assert "succeeded: 3 partition(s) landed, 3 rows" in out
    code, out, _ = hw(home, "run", str(path))
    assert "plan: 0 added, 0 changed, 0 removed, 3 unchanged" in out


def test_run_exits_non_zero_and_json_names_failures(home: Path, write_connector) -> None:
    path = write_connector(PARTLY_BAD)
    code, out, _ = hw(home, "run", str(path), "--json", "--attempts", "1")
    assert code == 1
    summary = json.loads(out)
    assert summary["status"] == "partial"
    assert summary["plan"] == {"added": 3, "changed": 0, "removed": 0, "unchanged": 0}
    assert summary["failures"] == [
        {
            "partition": "p1",
            "function": "read_records",
            "message": "raised KeyError: 'x' (fix: the error is in read_records() or in the "
            "system it calls; `headwater runs --run ID` shows its traceback)",
            "attempts": 1,
        }
    ]
    code, out, _ = hw(home, "runs", "--run", str(summary["run_id"]))
    assert "partition p1 in read_records() after 1 attempt(s)" in out
    assert 'raise KeyError("x")' in out  # the connector's traceback, its own frames


def test_settings_are_remembered(home: Path, write_connector) -> None:
    path = write_connector(PARTLY_BAD)
    hw(home, "run", str(path), "--attempts", "1", "--backoff", "0")
    _, out, _ = hw(home, "run", str(path), "--json")
    assert json.loads(out)["failures"][0]["attempts"] == 1


def test_credential_file_reaches_context(home: Path, write_connector, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("t0ken")
    path = write_connector(
        GOOD.replace(
            "def list_objects",
            "def context(credentials):\n    assert credentials == 't0ken'\n\ndef list_objects",
        )
    )
    assert hw(home, "run", str(path), "--credential-file", str(secret))[0] == 0
    code, _, err = hw(home, "run", str(path), "--credential-file", str(tmp_path / "nope"))
    assert code == 1
    assert "cannot read the credential file" in err


def test_query_formats(home: Path, write_connector) -> None:
    hw(home, "run", str(write_connector(GOOD)))
    sql = "SELECT part, n FROM conn ORDER BY part"
    code, out, _ = hw(home, "query", sql, "--format", "csv")
    assert code == 0
    assert list(csv.DictReader(io.StringIO(out))) == [{"part": f"p{i}", "n": "1"} for i in range(3)]
    code, out, _ = hw(home, "query", sql, "--format", "json")
    assert json.loads(out) == [{"part": f"p{i}", "n": 1} for i in range(3)]
    code, out, _ = hw(home, "query", sql)
    assert "p2" in out and "3 row(s)" in out


def test_inspection_commands(home: Path, write_connector) -> None:
    hw(home, "run", str(write_connector(GOOD)))
    code, out, _ = hw(home, "partitions", "conn", "--json")
    assert [p["name"] for p in json.loads(out)] == ["p0", "p1", "p2"]
    code, out, _ = hw(home, "schema", "conn", "--json")
    assert json.loads(out) == [
        {"name": "part", "type": "string", "nullable": True},
        {"name": "n", "type": "int64", "nullable": True},
    ]
    code, out, _ = hw(home, "preview", "conn", "-n", "2", "--format", "json")
    assert len(json.loads(out)) == 2
    code, out, _ = hw(home, "runs", "conn")
    assert code == 0 and "succeeded" in out
    code, out, _ = hw(home, "components")
    assert "conn" in out and "partitioned" in out


def test_errors_are_one_line(home: Path, write_connector) -> None:
    code, _, err = hw(home, "partitions", "nope")
    assert code == 1
    assert (
        err.strip() == "error: no component named 'nope' (components: none yet: run "
        "`headwater run FILE`)"
    )
    code, _, err = hw(home, "query", "SELECT * FROM nowhere")
    assert code == 1 and err.startswith("error: the query failed") and "nowhere" in err
    code, _, err = hw(home, "run", str(write_connector("def list_objects(c, m): yield 1\n")))
    assert code == 1
    assert "defines no read function" in err and "Traceback" not in err


def test_debug_shows_the_traceback(home: Path) -> None:
    result = runner.invoke(app, ["--home", str(home), "--debug", "partitions", "nope"])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "NotFoundError"


def test_an_unreachable_catalog_is_one_line(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_CATALOG_URL", "postgresql://nobody@127.0.0.1:1/none")
    code, _, err = hw(home, "components")
    assert code == 1
    assert err.startswith("error: the catalog database cannot be used:")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_credential_file_newline_is_not_part_of_the_secret(
    home: Path, write_connector, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("t0ken\n")
    path = write_connector(
        GOOD.replace(
            "def list_objects",
            "def context(credentials):\n"
            "    assert credentials == 't0ken', repr(credentials)\n"
            "\ndef list_objects",
        )
    )
    assert hw(home, "run", str(path), "--credential-file", str(secret))[0] == 0

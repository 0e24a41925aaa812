"""The examples run as they are: the folder-of-files connector and its demo script, and the HTTP
API connector against its server, started here on a free port."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headwater import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HTTP_CONNECTOR = EXAMPLES / "http_api" / "connector.py"
# The CLI and the scripts' python3 must be this virtualenv's.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
ENV.pop("HEADWATER_HOME", None)


def csv_rows(data: Path) -> dict[str, list[dict[str, str]]]:
    """Every CSV file under `data`, by its path relative to `data`, read with the csv module."""
    rows = {}
    for path in sorted(data.rglob("*.csv")):
        with path.open(newline="") as file:
            rows[path.relative_to(data).as_posix()] = list(csv.DictReader(file))
    return rows


def plan_lines(output: str) -> list[str]:
    return re.findall(r"^plan: .*$", output, flags=re.MULTILINE)


# -- files/ ----------------------------------------------------------------------------------


@pytest.fixture
def files_copy(tmp_path: Path) -> Path:
    """A copy of examples/files elsewhere: the example must not depend on where it lives."""
    return Path(shutil.copytree(EXAMPLES / "files", tmp_path / "files"))


def test_files_example_reads_every_csv_file(files_copy: Path, workspace: Workspace) -> None:
    expected = csv_rows(files_copy / "data")
    assert len(expected) == 4 and {name.split("/")[0] for name in expected} == {"2025", "2026"}

    result = workspace.refresh(files_copy / "connector.py", parser="csv").raise_for_status()

    assert result.counts == {"added": 4, "changed": 0, "removed": 0, "unchanged": 0}
    assert result.rows == sum(len(rows) for rows in expected.values())
    assert {p.name: p.row_count for p in workspace.partitions("connector")} == {
        name: len(rows) for name, rows in expected.items()
    }
    schema = workspace.schema("connector")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("order_id", "int64"),
        ("customer", "string"),
        ("amount", "double"),
        ("day", "date32[day]"),
    ]
    every = [row for rows in expected.values() for row in rows]
    [totals] = workspace.query(
        "SELECT count(DISTINCT order_id) AS orders, round(sum(amount), 2) AS total, "
        "CAST(min(day) AS VARCHAR) AS first_day FROM connector"
    ).to_pylist()
    assert totals == {
        "orders": len(every),
        "total": round(sum(float(row["amount"]) for row in every), 2),
        "first_day": min(row["day"] for row in every),
    }


def test_files_example_second_run_reads_only_what_changed(
    files_copy: Path, workspace: Workspace
) -> None:
    connector, data = files_copy / "connector.py", files_copy / "data"
    workspace.refresh(connector, parser="csv").raise_for_status()
    with (data / "2026" / "sales_02.csv").open("a") as file:
        file.write("4028,Harbor,61.50,2026-02-28\n")
    (data / "2026" / "sales_03.csv").write_text(
        "order_id,customer,amount,day\n5001,Acme,120.00,2026-03-01\n5002,Cobalt,45.25,2026-03-02\n"
    )
    (data / "2025" / "sales_11.csv").unlink()
    expected = csv_rows(data)

    second = workspace.refresh(connector, parser="csv").raise_for_status()

    assert second.counts == {"added": 1, "changed": 1, "removed": 1, "unchanged": 2}
    assert second.landed == 2
    assert second.rows == len(expected["2026/sales_02.csv"]) + len(expected["2026/sales_03.csv"])
    partitions = {p.name: p for p in workspace.partitions("connector")}
    assert {name: p.row_count for name, p in partitions.items()} == {
        name: len(rows) for name, rows in expected.items()
    }
    assert partitions["2025/sales_12.csv"].run_id == partitions["2026/sales_01.csv"].run_id == 1
    [appended] = workspace.query("SELECT * FROM connector WHERE order_id = 4028").to_pylist()
    assert (appended["customer"], appended["amount"]) == ("Harbor", 61.5)

    third = workspace.refresh(connector, parser="csv").raise_for_status()
    assert third.counts == {"added": 0, "changed": 0, "removed": 0, "unchanged": 4}
    assert third.landed == 0


def test_demo_script_shows_the_second_run_reading_only_what_changed(tmp_path: Path) -> None:
    data = EXAMPLES / "files" / "data"
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*")}

    done = subprocess.run(
        ["bash", str(EXAMPLES / "demo.sh")],
        cwd=tmp_path,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert plan_lines(done.stdout) == [
        "plan: 4 added, 0 changed, 0 removed, 0 unchanged",
        "plan: 1 added, 1 changed, 1 removed, 2 unchanged",
    ]
    assert re.search(r"^│ 2026-03 +│ 3 +│ 265.15 +│$", done.stdout, flags=re.MULTILINE)
    assert "4 partition(s), 97 rows" in done.stdout
    # The processor: its first run returns the large orders, its second none (the checkpoint).
    assert re.findall(r"^ok: (\d+) row\(s\)$", done.stdout, flags=re.MULTILINE) == ["45", "0"]
    assert "0 large orders after order 5001" in done.stdout
    # It worked on copies in a temporary home: the checkout and the working folder are untouched.
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == before
    assert list(tmp_path.iterdir()) == []


# -- http_api/ -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    url: str
    token: str

    def credential(self, token: str | None = None) -> str:
        return json.dumps({"base_url": self.url, "token": token or self.token})

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


@pytest.fixture
def api() -> Iterator[Api]:
    """The example's server on a free port; it prints its address once it is listening."""
    env = {**ENV, "ORDERS_API_TOKEN": "test-token"}
    command = [sys.executable, str(EXAMPLES / "http_api" / "server.py"), "--port", "0"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert match, f"the server printed {line!r}"
            yield Api(match[1], "test-token")
        finally:
            server.terminate()
    assert server.returncode == 0  # it stops cleanly on SIGTERM


def all_orders(api: Api) -> dict[str, list[dict[str, Any]]]:
    """Every order by day, paged through the API here, independently of the connector."""
    orders: dict[str, list[dict[str, Any]]] = {}
    for day in api.call("/days"):
        page: int | None = 1
        while page is not None:
            body = api.call(f"/orders?day={day['day']}&page={page}")
            orders.setdefault(day["day"], []).extend(body["orders"])
            page = body["next_page"]
    return orders


def test_http_example_stores_the_apis_orders(api: Api, workspace: Workspace) -> None:
    expected = all_orders(api)
    assert max(len(rows) for rows in expected.values()) > 20  # several pages: paging is covered

    result = workspace.refresh(HTTP_CONNECTOR, credential=api.credential()).raise_for_status()

    assert result.counts == {"added": 5, "changed": 0, "removed": 0, "unchanged": 0}
    stored = sorted(workspace.read_arrow("connector").to_pylist(), key=lambda r: r["order_id"])
    assert stored == sorted(
        (r for rows in expected.values() for r in rows), key=lambda r: r["order_id"]
    )
    assert {p.name: p.fingerprint for p in workspace.partitions("connector")} == {
        day["day"]: day["updated_at"] for day in api.call("/days")
    }


def test_http_example_second_run_reads_only_the_touched_day(api: Api, workspace: Workspace) -> None:
    workspace.refresh(HTTP_CONNECTOR, credential=api.credential()).raise_for_status()
    added = api.call("/orders", {"day": "2026-03-03", "customer": "Granite", "amount": 42.5})

    second = workspace.refresh(HTTP_CONNECTOR, credential=api.credential()).raise_for_status()

    assert second.counts == {"added": 0, "changed": 1, "removed": 0, "unchanged": 4}
    assert second.rows == len(all_orders(api)["2026-03-03"])
    assert workspace.query(
        f"SELECT customer, amount, day FROM connector WHERE order_id = {added['order_id']}"
    ).to_pylist() == [{"customer": "Granite", "amount": 42.5, "day": "2026-03-03"}]


def test_http_example_needs_the_right_token(api: Api, workspace: Workspace) -> None:
    wrong = workspace.refresh(HTTP_CONNECTOR, credential=api.credential("not-the-token"))
    assert wrong.status == "failed"
    assert wrong.error is not None
    assert "list_objects()" in wrong.error and "HTTP 401" in wrong.error
    assert "not-the-token" not in wrong.error

    missing = workspace.refresh(HTTP_CONNECTOR)
    assert missing.status == "failed"
    assert missing.error is not None
    assert "context()" in missing.error and "--credential-file" in missing.error
    assert workspace.partitions("connector") == []


def test_http_run_script_runs_offline_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(EXAMPLES / "http_api" / "run.sh")],
        cwd=tmp_path,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert plan_lines(done.stdout) == [
        "plan: 5 added, 0 changed, 0 removed, 0 unchanged",
        "plan: 0 added, 1 changed, 0 removed, 4 unchanged",
    ]
    assert re.search(r"^│ 2026-03-03 +│ 19 +│", done.stdout, flags=re.MULTILINE)

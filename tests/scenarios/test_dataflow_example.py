"""The dataflow example, as a user runs it: a real `headwater server` process, the definition
file applied with one command (`headwater apply`), then left to its schedule: the read connector
refreshes by itself, and the change flows down to the SQL transform, the Parquet files and the
PostgreSQL table. Nothing here triggers a run by hand."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

psycopg = pytest.importorskip("psycopg")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dataflow"
WAREHOUSE = "postgresql://postgres@127.0.0.1:5432/test"
SECONDS = 90  # the longest wait for the schedule and what it sets off (normally ~5 s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def table() -> Iterator[str]:
    try:
        psycopg.connect(WAREHOUSE, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {WAREHOUSE} is not reachable: {exc}")
    name = f"shop_example_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(WAREHOUSE, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def env(tmp_path: Path, table: str) -> dict[str, str]:
    data = shutil.copytree(EXAMPLE.parent / "files" / "data", tmp_path / "data")
    port = free_port()
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HEADWATER_HOME": str(tmp_path / "home"),
        "HEADWATER_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "HEADWATER_HOSTNAME": f"http://127.0.0.1:{port}",
        "HEADWATER_CREDENTIALS_FILE": str(tmp_path / "no-credentials-file"),
        "SHOP_PORT": str(port),
        "SHOP_DATA": str(data),
        "SHOP_OUTPUT": str(tmp_path / "output"),
        "SHOP_WAREHOUSE_URL": WAREHOUSE,
        "SHOP_WAREHOUSE_PASSWORD": "unused-with-trust-auth",
        "SHOP_TABLE": table,
        "SHOP_REFRESH_SECONDS": "2",
    }


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        ["headwater", "server", "--port", env["SHOP_PORT"], "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_healthy(env["HEADWATER_HOSTNAME"], process, tmp_path / "server.log")
        keys = json.loads(_headwater(env, "keys", "create", "--json").stdout)
        env["HEADWATER_ACCESS_KEY_ID"] = keys["access_key"]
        env["HEADWATER_SECRET_ACCESS_KEY"] = keys["secret_key"]
        yield process
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return
        except OSError:
            assert process.poll() is None, f"the server exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"the server did not start: {log.read_text()}"
            time.sleep(0.1)


def _headwater(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["headwater", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"headwater {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def expected_months(data: Path) -> dict[tuple[str, str], tuple[int, float]]:
    """Revenue per (month, customer), computed straight from the CSV files."""
    rows = duckdb.sql(
        f"SELECT strftime(day, '%Y-%m'), customer, count(*), round(sum(amount), 2) "
        f"FROM read_csv('{data}/**/*.csv') GROUP BY ALL"
    ).fetchall()
    return {(m, c): (n, float(r)) for m, c, n, r in rows}


def test_the_dataflow_is_applied_with_one_command_and_refreshes_on_its_schedule(
    env: dict[str, str], server: subprocess.Popen[bytes], table: str
) -> None:
    definition = str(EXAMPLE / "dataflow.py")
    dry = _headwater(env, "apply", definition, "--dry-run")
    assert "+ create" in dry.stdout and "shop/daily/monthly" in dry.stdout

    _headwater(env, "apply", definition)
    again = _headwater(env, "apply", definition)
    assert "+ create" not in again.stdout and "~ update" not in again.stdout, again.stdout

    # No refresh by hand: the schedule refreshes `orders`, which queues the rest.
    expected = expected_months(Path(env["SHOP_DATA"]))
    deadline = time.monotonic() + SECONDS
    while (found := _table(table)) != expected:
        assert time.monotonic() < deadline, f"the table never matched: {found} != {expected}"
        time.sleep(0.25)

    files = sorted(Path(env["SHOP_OUTPUT"]).glob("*.parquet"))
    assert len(files) == 1  # the transform is one partition, so one file
    written = pq.read_table(files[0]).to_pylist()
    assert {(r["month"], r["customer"]): (r["orders"], r["revenue"]) for r in written} == expected

    exported = _headwater(env, "export", "shop").stdout
    assert "DataService(" in exported and "Transform(" in exported


def _table(name: str) -> dict[tuple[str, str], tuple[int, float]]:
    with psycopg.connect(WAREHOUSE) as db:
        exists = db.execute("SELECT to_regclass(%s)", [name]).fetchone()
        if exists is None or exists[0] is None:
            return {}
        rows = db.execute(f"SELECT month, customer, orders, revenue FROM {name}").fetchall()
    return {(m, c): (n, float(r)) for m, c, n, r in rows}

"""SIGKILL a real `headwater server` during a refresh (SQLite and PostgreSQL catalogs).

The server runs as a subprocess on a temporary home with HEADWATER_FAILPOINT set at a point
inside the refresh: after the second partition's commit, or inside the third partition's
catalog transaction. Everything is made through the Python client: a data service, a dataflow,
a credential, a connection using it and a partitioned component whose connector checks the
credential. After the kill the server is started again on the same home, and:

- the killed run is reported abandoned (not stuck "running"), as is its engine run;
- no partition is half-visible: every committed partition's files exist and read back whole,
  the records the API serves are exactly those partitions' rows, and no uncommitted file is
  left in the store;
- the credential still decrypts and reaches the connector, and a new refresh completes the
  work (the two committed partitions unchanged, the rest added).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from headwater.client import (
    Client,
    Component,
    Connection,
    PartitionedDefinition,
    PartitionedSettings,
)
from headwater.client.errors import ConnectionFailedError
from headwater.settings import Settings
from headwater.vault import ServerKey
from headwater.workspace import Workspace

SECRET = "crash-test-token-7d41"
DIGEST = hashlib.sha256(SECRET.encode()).hexdigest()
NAMES = [f"p{i}" for i in range(6)]
ROWS = 50
FLOW = ("sales", "daily")
CATALOG_NAME = "sales__daily__orders"  # the catalog component the definition owns

# Six partitions of 50 rows, read one at a time (concurrency 1), so they commit in plan order.
# The connector refuses to run without the right credential.
CODE = f"""
import hashlib

def context(credentials):
    assert hashlib.sha256(credentials.encode()).hexdigest() == {DIGEST!r}, "wrong credential"
    return "ok"

def list_objects(context, metadata):
    for name in {NAMES!r}:
        yield {{"name": name, "fingerprint": "1", "is_prefix": False}}

def read_records(context, metadata):
    assert context == "ok"
    for i in range({ROWS}):
        yield {{"id": i, "tag": metadata["name"]}}
"""

# (failpoint, partitions committed when the server dies)
KILLS = [
    ("commit.after:2", 2),  # the 2nd partition committed, the process dies right after
    ("catalog.in_commit:3", 2),  # inside the 3rd partition's transaction: rolled back
]


SERVE = ["--workers", "2", "--log-level", "warning"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Home:
    """A server home: its environment (catalog, server key) and its log files."""

    def __init__(self, root: Path, catalog_url: str) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "HEADWATER_SECRET_KEY": ServerKey.generate(),
            "HEADWATER_CATALOG_URL": catalog_url,
        }
        for name in ("HEADWATER_FAILPOINT", "HEADWATER_STORE_URL", "HEADWATER_HOME"):
            self.env.pop(name, None)
        self.settings = Settings.from_env(self.env, home=root)
        self.headwater = [sys.executable, "-m", "headwater", "--home", str(root)]
        self.starts = 0
        self.key: dict[str, str] | None = None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*self.headwater, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    @contextlib.contextmanager
    def server(self, failpoint: str | None = None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
        """A started server (health answered); yields (process, host:port). Stopped after."""
        self.starts += 1
        port = free_port()
        env = dict(self.env)
        if failpoint:
            env["HEADWATER_FAILPOINT"] = failpoint
        if self.key is None:  # before the first start, which then finds the catalog made
            self.key = json.loads(self.cli("keys", "create", "--json"))
        log = self.root.parent / f"server-{self.starts}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*self.headwater, "server", "--port", str(port), *SERVE],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            host = f"127.0.0.1:{port}"
            with self.client(host) as probe:
                deadline = time.monotonic() + 30
                while True:  # a bounded retry loop until the server answers its health check
                    try:
                        probe.health()
                        break
                    except ConnectionFailedError:
                        assert process.poll() is None, f"the server exited: {log.read_text()}"
                        assert time.monotonic() < deadline, f"no answer: {log.read_text()}"
                        time.sleep(0.05)  # pacing the retries, not waiting for anything
            yield process, host
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)

    def client(self, host: str) -> Client:
        assert self.key is not None
        return Client(host, self.key["access_key"], self.key["secret_key"], scheme="http")

    def log(self, n: int) -> str:
        return (self.root.parent / f"server-{n}.log").read_text(errors="replace")


def store_state(home: Home) -> tuple[dict[str, int], set[str], set[str], list[str]]:
    """From the catalog and store directly: {partition: rows read back from its files},
    committed files, files on disk, and the engine runs' statuses (newest first)."""
    with Workspace(home.settings) as ws:
        store = Path(ws.store.root)
        partitions = ws.partitions(CATALOG_NAME)
        read: dict[str, int] = {}
        committed: set[str] = set()
        for p in partitions:
            rows = []
            for f in p.files:
                assert (store / f).is_file(), f"committed file {f} of {p.name} is missing"
                rows += pq.read_table(store / f).to_pylist()
            assert len(rows) == p.row_count == ROWS, (p.name, len(rows), p.row_count)
            assert sorted((r["tag"], r["id"]) for r in rows) == [(p.name, i) for i in range(ROWS)]
            read[p.name] = len(rows)
            committed |= set(p.files)
        statuses = [r.status for r in ws.runs(CATALOG_NAME)]
    on_disk = {str(f.relative_to(store)) for f in store.rglob("*") if f.is_file()}
    return read, committed, on_disk, statuses


def kill_during_refresh(home: Home, failpoint: str) -> int:
    """Make everything through the client on a server that dies at `failpoint` inside the
    refresh it is asked for; returns the killed run's id."""
    with home.server(failpoint) as (process, host), home.client(host) as hw:
        hw.create_data_service({"id": FLOW[0]})
        hw.create_dataflow(FLOW[0], {"id": FLOW[1]})
        hw.put_credential(FLOW[0], "token", SECRET)
        hw.create_connection(FLOW[0], Connection(id="api", credential="token"))
        settings = PartitionedSettings(concurrency=1)
        definition = PartitionedDefinition(code=CODE, settings=settings)
        hw.create_component(*FLOW, Component(id="orders", connection="api", partitioned=definition))
        killed = hw.refresh_component(*FLOW, "orders")
        process.wait(60)
        assert process.returncode == -signal.SIGKILL, (
            f"the server was not killed at {failpoint}: {home.log(1)}"
        )
    return killed.id


@pytest.mark.parametrize(("failpoint", "committed"), KILLS, ids=[k[0] for k in KILLS])
def test_sigkill_server_during_refresh(
    tmp_path: Path, catalog_url: str, failpoint: str, committed: int
) -> None:
    home = Home(tmp_path / "home", catalog_url)

    killed = kill_during_refresh(home, failpoint)

    # What the killed server left, read from the catalog and store before anything cleans up:
    # only whole partitions are committed.
    read, files, _, statuses = store_state(home)
    assert sorted(read) == NAMES[:committed]
    assert statuses == ["running"]  # the engine run the kill interrupted

    # 2. Restarted on the same home: the run is closed, nothing half-visible, nothing lost.
    with home.server() as (_, host), home.client(host) as hw:
        run = hw.get_run(killed)
        assert run.status == "abandoned", run
        assert run.finished and run.finished_at is not None and run.error, run
        assert [r.status for r in hw.list_component_runs(*FLOW, "orders")] == ["abandoned"]

        partitions = hw.get_partitions(*FLOW, "orders")
        assert [(p.name, p.row_count) for p in partitions] == [(n, ROWS) for n in read]
        records = list(hw.iter_records(*FLOW, "orders", page_size=40))
        assert sorted((r["tag"], r["id"]) for r in records) == [
            (n, i) for n in NAMES[:committed] for i in range(ROWS)
        ]
        assert hw.get_records_arrow(*FLOW, "orders").num_rows == committed * ROWS

        # The start-up closed the engine run and swept what it left uncommitted.
        read_after, files_after, on_disk, statuses = store_state(home)
        assert read_after == read and files_after == files
        assert on_disk == files, f"uncommitted files left: {sorted(on_disk - files)}"
        assert statuses == ["abandoned"]

        # The credential survived the kill: it still decrypts and reaches the connector (which
        # asserts it), and the new refresh completes the work.
        assert [c.name for c in hw.list_credentials(FLOW[0])] == ["token"]
        again = hw.refresh_component(*FLOW, "orders")
        done = hw.wait_for_run(again.id, timeout=60)
        assert done.status == "succeeded", (done, home.log(2))
        assert done.plan is not None
        assert (done.plan.added, done.plan.unchanged) == (len(NAMES) - committed, committed)
        assert (done.landed, done.rows) == (len(NAMES) - committed, (len(NAMES) - committed) * ROWS)

        partitions = hw.get_partitions(*FLOW, "orders")
        assert [(p.name, p.row_count) for p in partitions] == [(n, ROWS) for n in NAMES]
        records = list(hw.iter_records(*FLOW, "orders", page_size=1000))
        assert sorted((r["tag"], r["id"]) for r in records) == [
            (n, i) for n in NAMES for i in range(ROWS)
        ]

    read, files, on_disk, statuses = store_state(home)
    assert sorted(read) == NAMES and on_disk == files
    assert statuses == ["succeeded", "abandoned"]


def test_an_abandoned_run_names_its_engine_run(tmp_path: Path) -> None:
    """A run abandoned by a kill names the engine run that committed its partitions, and
    reports what it landed (the link is found from the run's window, not only at its end)."""
    home = Home(tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'catalog.db'}")
    killed = kill_during_refresh(home, "commit.after:2")
    with home.server() as (_, host), home.client(host) as hw:
        run = hw.get_run(killed)
        partitions = hw.get_partitions(*FLOW, "orders")
        assert run.status == "abandoned" and len(partitions) == 2
        assert {p.engine_run_id for p in partitions} == {run.engine_run_id}
        assert (run.landed, run.rows) == (2, 2 * ROWS)

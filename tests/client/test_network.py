"""The client over real sockets: a `headwater server` process end to end, uvicorn in a thread
for live log streaming, an HTTP proxy on localhost (HTTP_PROXY, HTTPS_PROXY with CONNECT,
NO_PROXY), and a TLS server whose certificate a private CA signed (REQUESTS_CA_BUNDLE,
SSL_CERT_FILE, verify=)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headwater.client import (
    Client,
    Component,
    ConnectionFailedError,
    DataService,
    LogLine,
    PartitionedDefinition,
    PartitionedSettings,
    Run,
    RunTimeoutError,
)
from headwater.server import create_app
from headwater.server.state import Server
from headwater.vault import ServerKey
from tests.client.conftest import GATED, serve, sqlite_settings, wait_for_port, write_credentials
from tests.client.network import Certificates, certificates, proxy
from tests.server.conftest import LISTING

Live = tuple[int, Server, Callable[..., Client]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_end_to_end_against_a_headwater_server_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **os.environ,
        "HEADWATER_HOME": str(tmp_path / "home"),
        "HEADWATER_SECRET_KEY": ServerKey.generate(),
    }
    command = [sys.executable, "-m", "headwater"]
    created = subprocess.run(
        [*command, "keys", "create", "--json"], env=env, capture_output=True, text=True, check=True
    )
    key = json.loads(created.stdout)
    port = free_port()
    # The key pair comes from the credentials file's section for this server.
    credentials = tmp_path / "credentials"
    write_credentials(credentials, {f"127.0.0.1:{port}": key})
    monkeypatch.setenv("HEADWATER_CREDENTIALS_FILE", str(credentials))
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [*command, "server", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        with Client(f"127.0.0.1:{port}", scheme="http") as hw:
            assert hw.health().status == "ok"
            hw.create_data_service(DataService(id="sales"))
            hw.create_dataflow("sales", {"id": "daily"})
            hw.put_credential("sales", "token", "e2e-planted-secret-4b1")
            objects = tmp_path / "objects.json"
            objects.write_text(json.dumps({"a": ["1", 3], "b": ["1", 2]}))
            code = LISTING.format(path=str(objects))
            hw.create_component(
                "sales",
                "daily",
                Component(id="orders", partitioned=PartitionedDefinition(code=code)),
            )
            run = hw.refresh_component("sales", "daily", "orders")
            items = list(hw.follow_run_logs(run.id))
            assert isinstance(items[-1], Run) and items[-1].status == "succeeded", items
            assert any(isinstance(i, LogLine) and i.message.startswith("plan:") for i in items)
            page = hw.get_records("sales", "daily", "orders", limit=3)
            assert len(page.rows) == 3 and page.next_cursor is not None
            assert len(list(hw.iter_records("sales", "daily", "orders", page_size=2))) == 5
            table = hw.get_records_arrow("sales", "daily", "orders")
            assert table.num_rows == 5 and table.column_names == ["id", "tag"]
            assert [p.name for p in hw.get_partitions("sales", "daily", "orders")] == ["a", "b"]
            hw.delete_data_service("sales")
            assert hw.list_data_services() == []
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    assert "e2e-planted-secret-4b1" not in (tmp_path / "server.log").read_text()


def test_logs_stream_live_and_wait_for_run_gives_up_in_time(
    live: Live, gate: types.SimpleNamespace
) -> None:
    _, _, make = live
    hw = make(scheme="http")
    hw.create_data_service({"id": "sales"})
    hw.create_dataflow("sales", {"id": "daily"})
    settings = PartitionedSettings(concurrency=1)
    component = Component(
        id="orders", partitioned=PartitionedDefinition(code=GATED, settings=settings)
    )
    hw.create_component("sales", "daily", component)
    run = hw.refresh_component("sales", "daily", "orders")
    stream = hw.follow_run_logs(run.id)
    first = next(stream)  # arrives while the run is held inside partition "a"
    assert isinstance(first, LogLine) and first.message.startswith("queued")
    assert gate.started.wait(30)
    assert hw.get_run(run.id).status == "running"
    with pytest.raises(RunTimeoutError) as late:
        hw.wait_for_run(run.id, timeout=0.5)
    assert late.value.run_id == run.id and "cancel it with cancel_run" in str(late.value)
    gate.release.set()
    rest = list(stream)
    assert isinstance(rest[-1], Run) and rest[-1].status == "succeeded"
    assert hw.wait_for_run(run.id, timeout=30).status == "succeeded"


def test_http_requests_go_through_the_proxy_unless_no_proxy(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _, make = live
    with proxy() as (proxy_url, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        proxied = make(scheme="http")
        proxied.create_data_service({"id": "sales"})
        assert [d.id for d in proxied.list_data_services()] == ["sales"]  # signed, through it
        base = f"http://127.0.0.1:{port}/api/v1/data-services"
        assert seen == [("POST", base), ("GET", base)]

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = make(scheme="http")
        assert [d.id for d in direct.list_data_services()] == ["sales"]
        assert len(seen) == 2  # bypassed


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return certificates(tmp_path)


@pytest.fixture
def tls(tmp_path: Path, certs: Certificates) -> Iterator[Live]:
    """The app over TLS with a certificate signed by a private CA."""
    app = create_app(sqlite_settings(tmp_path / "tls"))
    with serve(app, certfile=str(certs.server_cert), keyfile=str(certs.server_key)) as port:
        state: Server = app.state.headwater
        made: list[Client] = []

        def make(**options: object) -> Client:
            key = state.keys.create()
            new = Client(
                f"127.0.0.1:{port}",
                key.access_key,
                key.secret_key.reveal(),
                **options,  # type: ignore[arg-type]
            )
            made.append(new)
            return new

        yield port, state, make
        for each in made:
            each.close()


def test_a_private_ca_is_trusted_from_a_bundle_of_several_certificates(
    tls: Live, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, make = tls
    with pytest.raises(ConnectionFailedError) as untrusted:
        make().list_data_services()
    assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
    assert "REQUESTS_CA_BUNDLE" in str(untrusted.value)

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.bundle))
    make().create_data_service({"id": "sales"})
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")

    monkeypatch.setenv("SSL_CERT_FILE", str(certs.bundle))
    assert [d.id for d in make().list_data_services()] == ["sales"]
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.others_only))  # the CA is what matters
    with pytest.raises(ConnectionFailedError, match="CERTIFICATE_VERIFY_FAILED"):
        make().list_data_services()
    monkeypatch.delenv("SSL_CERT_FILE")

    assert make(verify=str(certs.bundle)).health().status == "ok"
    assert make(verify=False).health().status == "ok"


def test_https_goes_through_the_proxy_as_a_connect_tunnel(
    tls: Live, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _, make = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.bundle))
    with proxy() as (proxy_url, seen):
        monkeypatch.setenv("HTTPS_PROXY", proxy_url)
        tunnelled = make()
        tunnelled.create_data_service({"id": "sales"})
        assert [d.id for d in tunnelled.list_data_services()] == ["sales"]
        assert seen and set(seen) == {("CONNECT", f"127.0.0.1:{port}")}

        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        count = len(seen)
        assert [d.id for d in make().list_data_services()] == ["sales"]
        assert len(seen) == count

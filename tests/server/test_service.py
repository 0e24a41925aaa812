"""The server as a service: unexpected errors answer 500 without a traceback, a wrong server
key answers 503, settings fail clearly at startup, the migration goes down and up, and the
client's models import nothing of the server."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import sqlalchemy as sa
import typer
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from headwater.catalog import Catalog, connect
from headwater.errors import SettingsError
from headwater.server import ServerSettings, create_app
from headwater.server.commands import server as server_command
from headwater.server.state import Server
from headwater.signing import sign
from headwater.vault import SECRET_KEY_ENV, ServerKey
from tests.server.conftest import PREFIX, Signer, ok

NEW_TABLES = {
    "data_services", "dataflows", "connections", "component_definitions", "server_runs",
    "server_run_logs",
}  # fmt: skip


def test_an_unexpected_error_answers_500_without_a_traceback(
    server_settings: ServerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(server_settings)

    def boom() -> None:
        raise RuntimeError("secret internals at line 42")

    app.add_api_route("/boom", boom)  # a route of this test only; /health needs no signature
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500
    body = answer.json()
    assert body["error"] == "internal" and "reference" in body["message"]
    assert "secret internals" not in answer.text and "Traceback" not in answer.text
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)


def test_a_server_started_with_another_key_answers_503(
    server_settings: ServerSettings, client: TestClient, server: Server
) -> None:
    key = server.keys.create()
    other = dataclasses.replace(
        server_settings, server_key=ServerKey.from_text(ServerKey.generate())
    )
    with TestClient(create_app(other)) as wrong:
        wrong.auth = Signer(key.access_key, key.secret_key.reveal())
        answer = wrong.get(f"{PREFIX}/data-services")
    assert answer.status_code == 503 and answer.json()["error"] == "unavailable"
    assert SECRET_KEY_ENV in answer.json()["message"]


def test_settings_and_the_command_fail_clearly_without_a_server_key(tmp_path: object) -> None:
    with pytest.raises(SettingsError, match=f"{SECRET_KEY_ENV} is not set.*Generate one"):
        ServerSettings.from_env({"HEADWATER_HOME": str(tmp_path)})
    with pytest.raises(SettingsError, match="HEADWATER_SERVER_WORKERS"):
        ServerSettings.from_env(
            {SECRET_KEY_ENV: ServerKey.generate(), "HEADWATER_SERVER_WORKERS": "many"}
        )
    app = typer.Typer()
    app.command()(server_command)
    app.command("other")(lambda: None)  # two commands, so `server` is a subcommand
    result = CliRunner().invoke(app, ["server", "--port", "0"], env={SECRET_KEY_ENV: ""})
    assert result.exit_code == 1
    assert f"{SECRET_KEY_ENV} is not set" in result.stderr
    assert "Example: headwater server" in CliRunner().invoke(app, ["server", "--help"]).stdout


def test_the_unsigned_routes_are_only_health_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method in operations:
            if path == "/health":
                continue
            answer = client.request(method.upper(), path.replace("{run_id}", "1"))
            assert answer.status_code == 401, (method, path)


def test_migration_0005_goes_down_and_up(catalog_url: str) -> None:
    catalog = Catalog.open(catalog_url)
    config = Config()
    config.set_main_option("script_location", str(connect.MIGRATIONS))

    def migrate(target: str, *, down: bool = False) -> None:
        with catalog.engine.begin() as c:
            config.attributes["connection"] = c
            (command.downgrade if down else command.upgrade)(config, target)

    try:
        assert set(sa.inspect(catalog.engine).get_table_names()) >= NEW_TABLES
        migrate("0004", down=True)
        assert not NEW_TABLES & set(sa.inspect(catalog.engine).get_table_names())
        migrate("head")
        assert set(sa.inspect(catalog.engine).get_table_names()) >= NEW_TABLES
    finally:
        catalog.close()


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("headwater.client.models", "'fastapi', 'starlette', 'sqlalchemy', 'uvicorn'"),
        ("headwater.server.commands", "'fastapi', 'starlette', 'uvicorn', 'pandas'"),
    ],
)
def test_light_modules_stay_light(module: str, heavy: str) -> None:
    # The client's models load no server; the CLI's command loads FastAPI only when it runs.
    code = f"import sys, {module}; print(sorted(m for m in ({heavy}) if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_signed_requests_with_a_body_on_get_are_checked(
    api: TestClient, client: TestClient, server: Server
) -> None:
    ok(api.post(f"{PREFIX}/data-services", json={"id": "sales"}), 201)
    key = server.keys.create()
    headers = sign("GET", f"{PREFIX}/data-services", b"x", key.access_key, key.secret_key.reveal())
    assert (
        client.request("GET", f"{PREFIX}/data-services", content=b"x", headers=headers).status_code
        == 200
    )
    assert (
        client.request("GET", f"{PREFIX}/data-services", content=b"y", headers=headers).status_code
        == 401
    )

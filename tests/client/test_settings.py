"""Where the client finds its server and key pair: arguments, environment variables, then the
credentials file (a section per hostname or profile, and [default]); clear errors that list
what was tried and never show a secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from headwater.client import Client, ConfigError, CredentialsNotFoundError
from headwater.client.settings import resolve
from tests.client.conftest import write_credentials

AK = {name: f"HW{letter * 16}" for name, letter in [("file", "F"), ("host", "H"), ("env", "E")]}
SK = {name: f"secret-of-{name}-" + "x" * 24 for name in ("file", "host", "env", "port")}


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_credentials(
        tmp_path / "credentials",
        {
            "default": {"access_key": AK["file"], "secret_key": SK["file"]},
            "hw.example.com": {"access_key": AK["host"], "secret_key": SK["host"]},
            "hw.example.com:8443": {"access_key": AK["host"], "secret_key": SK["port"]},
            "staging": {
                "hostname": "https://staging.internal:8443",
                "access_key": AK["host"],
                "secret_key": SK["host"],
                "verify": "false",
            },
        },
    )
    monkeypatch.setenv("HEADWATER_CREDENTIALS_FILE", str(path))
    return path


def test_the_file_section_of_the_hostname_wins_then_default(credentials: Path) -> None:
    by_host = Client("hw.example.com")
    assert (by_host.base_url, by_host.access_key) == ("https://hw.example.com", AK["host"])
    assert by_host.credentials_from == f"section [hw.example.com] of {credentials}"
    with_port = Client("hw.example.com", port=8443)
    assert with_port.credentials_from.startswith("section [hw.example.com:8443]")
    assert Client("https://hw.example.com:8443").base_url == "https://hw.example.com:8443"
    other = Client("other.example.com:9000", scheme="http")
    assert (other.base_url, other.access_key) == ("http://other.example.com:9000", AK["file"])
    assert other.credentials_from == f"section [default] of {credentials}"


def test_a_profile_names_its_section_and_server(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = Client(profile="staging")
    assert staging.base_url == "https://staging.internal:8443"
    settings = resolve(None, None, None, port=None, scheme="https", verify=None, profile="staging")
    assert settings.verify is False  # verify = false in the section
    monkeypatch.setenv("HEADWATER_PROFILE", "staging")
    assert Client().base_url == "https://staging.internal:8443"
    assert Client("elsewhere:1").base_url == "https://elsewhere:1"  # the argument wins
    with pytest.raises(CredentialsNotFoundError, match=r"has no section \[nope\]"):
        Client("hw.example.com", profile="nope")


def test_environment_variables_override_the_file_and_arguments_override_both(
    credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_ACCESS_KEY_ID", AK["env"])
    monkeypatch.setenv("HEADWATER_SECRET_ACCESS_KEY", SK["env"])
    monkeypatch.setenv("HEADWATER_HOSTNAME", "env.example.com")
    from_env = Client()
    assert (from_env.base_url, from_env.access_key) == ("https://env.example.com", AK["env"])
    assert from_env.credentials_from == "HEADWATER_ACCESS_KEY_ID/HEADWATER_SECRET_ACCESS_KEY"
    given = Client("hw.example.com", AK["file"], SK["file"])
    assert given.access_key == AK["file"]
    assert given.credentials_from == "the access_key=/secret_key= arguments"
    monkeypatch.delenv("HEADWATER_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="half a key pair: the secret key is missing"):
        Client()


def test_no_credentials_is_one_error_listing_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("HEADWATER_CREDENTIALS_FILE", str(missing))
    with pytest.raises(CredentialsNotFoundError) as error:
        Client("hw.example.com")
    message = str(error.value)
    for tried in (
        "access_key=/secret_key= arguments: not set",
        "HEADWATER_ACCESS_KEY_ID/HEADWATER_SECRET_ACCESS_KEY: not set",
        f"credentials file {missing}: not found",
        "headwater keys create --json",
    ):
        assert tried in message, message

    planted = "planted-secret-in-another-section-0123456789"
    write_credentials(missing, {"prod": {"access_key": AK["file"], "secret_key": planted}})
    with pytest.raises(CredentialsNotFoundError) as error:
        Client("hw.example.com:8443")
    assert r"has no section [hw.example.com:8443], [hw.example.com], [default]" in str(error.value)
    assert "(it has [prod])" in str(error.value) and planted not in str(error.value)

    missing.write_text(f"not an ini file\nsecret_key = {planted}\n")
    with pytest.raises(ConfigError, match="cannot read the credentials file") as broken:
        Client("hw.example.com")
    assert planted not in str(broken.value)


def test_bad_settings_fail_clearly_without_echoing_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"no server to connect to.*HEADWATER_HOSTNAME"):
        Client(access_key=AK["env"], secret_key=SK["env"])
    swapped = "s3cr3t-" + "y" * 30
    with pytest.raises(ConfigError, match="not a Headwater access key") as error:
        Client("hw.example.com", access_key=swapped, secret_key=AK["env"])
    assert swapped not in str(error.value)
    for hostname, fault in [
        ("hw.example.com/api", "no path"),
        ("ftp://hw.example.com", "scheme must be http or https"),
        ("hw.example.com:port", "not a number"),
    ]:
        with pytest.raises(ConfigError, match=fault):
            Client(hostname, AK["env"], SK["env"])
    with pytest.raises(ConfigError, match="names port 8000 but port=9000"):
        Client("hw.example.com:8000", AK["env"], SK["env"], port=9000)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    with pytest.raises(ConfigError, match="CA certificates REQUESTS_CA_BUNDLE names"):
        Client("hw.example.com", AK["env"], SK["env"])
    client = Client("hw.example.com", AK["env"], SK["env"], scheme="http")  # no TLS: not read
    assert SK["env"] not in repr(client) and AK["env"] in repr(client)


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    code = (
        "import sys, headwater.client\n"
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'headwater.server', 'pyarrow', "
        "'cryptography') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

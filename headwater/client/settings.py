"""Where the client finds its server, its key pair and the certificates it trusts.

Read once, when a `Client` is made, in this order (the first that gives a value wins):

- hostname: the `hostname=` argument, `HEADWATER_HOSTNAME`, the chosen section's `hostname`.
- key pair: the `access_key=`/`secret_key=` arguments, `HEADWATER_ACCESS_KEY_ID` and
  `HEADWATER_SECRET_ACCESS_KEY`, then the credentials file (`HEADWATER_CREDENTIALS_FILE`, or
  `~/.headwater/credentials`): section `[<profile>]` when a profile is named (`profile=` or
  `HEADWATER_PROFILE`), else `[<hostname>:<port>]`, `[<hostname>]`, then `[default]`.
- CA certificates: the `verify=` argument, the section's `verify`, `REQUESTS_CA_BUNDLE`,
  `SSL_CERT_FILE`, `SSL_CERT_DIR`, else certifi's bundle.

(`HEADWATER_SECRET_KEY` is the *server's* encryption key, never a client setting.)
"""

from __future__ import annotations

import configparser
import os
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from headwater.client.errors import ConfigError, CredentialsNotFoundError
from headwater.signing import ACCESS_KEY_RE

ACCESS_KEY_ENV = "HEADWATER_ACCESS_KEY_ID"
SECRET_KEY_ENV = "HEADWATER_SECRET_ACCESS_KEY"
HOSTNAME_ENV = "HEADWATER_HOSTNAME"
PROFILE_ENV = "HEADWATER_PROFILE"
CREDENTIALS_FILE_ENV = "HEADWATER_CREDENTIALS_FILE"
CA_BUNDLE_ENVS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
CA_DIR_ENV = "SSL_CERT_DIR"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

Verify = ssl.SSLContext | str | bool


@dataclass(frozen=True)
class ClientSettings:
    """What a client connects with: the server's base URL, the key pair, and TLS trust."""

    base_url: str
    access_key: str
    secret_key: str = field(repr=False)
    verify: ssl.SSLContext | bool
    credentials_from: str  # where the key pair came from, for messages


@dataclass(frozen=True)
class _Section:
    name: str
    values: Mapping[str, str]
    path: Path


def resolve(
    hostname: str | None,
    access_key: str | None,
    secret_key: str | None,
    *,
    port: int | None,
    scheme: str,
    verify: Verify | None,
    profile: str | None,
    environ: Mapping[str, str] | None = None,
) -> ClientSettings:
    """Settings from the arguments, the environment and the credentials file (see above)."""
    env = os.environ if environ is None else environ
    path = credentials_path(env)
    profile = profile or env.get(PROFILE_ENV) or None
    host = hostname or env.get(HOSTNAME_ENV) or None
    parsed_scheme, host, port = _split_host(host, port, scheme) if host else (scheme, None, port)
    section = _find_section(path, profile, host, port)
    if host is None and section is not None and section.values.get("hostname"):
        parsed_scheme, host, port = _split_host(
            section.values["hostname"],
            port or _int(section, "port"),
            section.values.get("scheme", scheme),
        )
    if host is None:
        raise ConfigError(
            "no server to connect to: pass hostname= (e.g. 'headwater.example.com' or "
            f"'localhost:8000'), set {HOSTNAME_ENV}, or give the {_where(path, profile)} section "
            f"of {path} a hostname"
        )
    key, secret, source = _key_pair(access_key, secret_key, env, path, section, profile, host, port)
    if not ACCESS_KEY_RE.fullmatch(key):
        # The value is not echoed: a swapped pair would print the secret.
        raise ConfigError(
            f"the access key from {source} is not a Headwater access key (HW followed by 16 "
            "or more letters and digits); check that access key and secret key are not swapped"
        )
    if verify is None and section is not None and "verify" in section.values:
        verify = _verify_value(section)
    netloc = f"[{host}]" if ":" in host else host
    base_url = f"{parsed_scheme}://{netloc}" + (f":{port}" if port else "")
    return ClientSettings(
        base_url=base_url,
        access_key=key,
        secret_key=secret,
        # Plain HTTP needs no trust; a broken CA setting then does not stop it.
        verify=tls(verify, env) if parsed_scheme == "https" else ssl.create_default_context(),
        credentials_from=source,
    )


def credentials_path(environ: Mapping[str, str]) -> Path:
    """The credentials file: `HEADWATER_CREDENTIALS_FILE`, else ~/.headwater/credentials."""
    given = environ.get(CREDENTIALS_FILE_ENV)
    return Path(given).expanduser() if given else Path.home() / ".headwater" / "credentials"


def tls(verify: Verify | None, environ: Mapping[str, str]) -> ssl.SSLContext | bool:
    """The TLS trust for `verify`: False (no checks), a context, or a CA bundle (a PEM file,
    several certificates allowed, or a directory); None or True look at the environment."""
    if verify is False or isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, str):
        return _context(verify, "verify=")
    for name in CA_BUNDLE_ENVS:
        if environ.get(name):
            return _context(environ[name], name)
    if environ.get(CA_DIR_ENV):
        return _context(environ[CA_DIR_ENV], CA_DIR_ENV)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _context(location: str, setting: str) -> ssl.SSLContext:
    path = Path(location).expanduser()
    try:
        if path.is_dir():
            return ssl.create_default_context(capath=str(path))
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the CA certificates {setting} names ({path}): {exc}; give a PEM file "
            "(one or more certificates) or a directory of them"
        ) from None


def _split_host(host: str, port: int | None, scheme: str) -> tuple[str, str, int | None]:
    """(scheme, hostname, port) from 'host', 'host:port' or 'https://host:port'."""
    parts = urllib.parse.urlsplit(host if "://" in host else f"{scheme}://{host}")
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"scheme must be http or https, not {parts.scheme!r}")
    try:
        found = parts.port
    except ValueError:
        raise ConfigError(f"hostname {host!r} has a port that is not a number") from None
    if not parts.hostname or parts.path.strip("/") or parts.query:
        raise ConfigError(
            f"hostname {host!r} is not a host name: give 'host', 'host:port' or "
            "'https://host:port' (no path)"
        )
    if port is not None and found is not None and port != found:
        raise ConfigError(f"hostname {host!r} names port {found} but port={port} was given")
    return parts.scheme, parts.hostname, port if port is not None else found


def _read(path: Path) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as file:
            parser.read_file(file)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        # configparser's messages quote the offending line, which may hold a secret.
        raise ConfigError(
            f"cannot read the credentials file {path} ({type(exc).__name__}); it must be an "
            "INI file of [sections] with access_key = ... and secret_key = ... lines"
        ) from None
    return parser


def _candidates(profile: str | None, host: str | None, port: int | None) -> list[str]:
    if profile:
        return [profile]
    names = [f"{host}:{port}"] if host and port else []
    return [*names, *([host] if host else []), "default"]


def _find_section(
    path: Path, profile: str | None, host: str | None, port: int | None
) -> _Section | None:
    parser = _read(path)
    if parser is None:
        return None
    for name in _candidates(profile, host, port):
        if parser.has_section(name):
            return _Section(name, dict(parser.items(name)), path)
    return None


def _where(path: Path, profile: str | None) -> str:
    return f"[{profile}]" if profile else "[default]"


def _key_pair(
    access_key: str | None,
    secret_key: str | None,
    env: Mapping[str, str],
    path: Path,
    section: _Section | None,
    profile: str | None,
    host: str,
    port: int | None,
) -> tuple[str, str, str]:
    """(access key, secret key, where they came from); a half pair anywhere is an error."""
    tried = []
    sources = [
        ("the access_key=/secret_key= arguments", access_key, secret_key),
        (f"{ACCESS_KEY_ENV}/{SECRET_KEY_ENV}", env.get(ACCESS_KEY_ENV), env.get(SECRET_KEY_ENV)),
    ]
    if section is not None:
        values = section.values
        where = f"section [{section.name}] of {path}"
        sources.append((where, values.get("access_key"), values.get("secret_key")))
    for source, key, secret in sources:
        if key and secret:
            return key.strip(), secret.strip(), source
        if key or secret:
            missing = "secret key" if key else "access key"
            raise ConfigError(f"{source} give(s) half a key pair: the {missing} is missing")
        tried.append(f"{source}: not set")
    if section is None:
        looked = ", ".join(f"[{n}]" for n in _candidates(profile, host, port))
        parser = _read(path)
        has = ", ".join(f"[{s}]" for s in parser.sections()) if parser else ""
        state = f"has no section {looked} (it has {has or 'none'})" if parser else "not found"
        tried.append(f"credentials file {path}: {state}")
    raise CredentialsNotFoundError(
        f"no access key and secret key for {host}; tried: {'; '.join(tried)}. Fix: pass "
        f"access_key= and secret_key=, set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or add a "
        f"section [{profile or host}] (or [default]) with access_key = ... and secret_key = ... "
        f"to {path} (make a key pair with `headwater keys create --json`)"
    )


def _int(section: _Section, key: str) -> int | None:
    text = section.values.get(key)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(
            f"{key} = {text!r} in section [{section.name}] of {section.path} is not a number"
        ) from None


def _verify_value(section: _Section) -> Verify:
    text = section.values["verify"].strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    return text  # a CA bundle's path

"""ProcessorSettings, through the real sandbox: the defaults, a network grant, a deployment's own
import allow-list, and the caps on statement size, row count and output size."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Callable

import pytest

from headwater.processor import DEFAULT_ALLOWED_IMPORTS, ProcessorSettings, run_statement

PG_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")

# HTTP to PostgreSQL's port: when the connection is made, PostgreSQL hangs up on the request
# (an httpx protocol error); when it is not, httpx raises ConnectError.
POSTGRES_STATEMENT = """
import httpx
try:
    r = httpx.get('http://127.0.0.1:5432/', timeout=3)
    out = 'answered ' + str(r.status_code)
except Exception as e:
    out = str(type(e)) + ' ' + str(e)
return [{'out': out}]
"""


def test_defaults() -> None:
    settings = ProcessorSettings()
    assert settings.network is False
    assert settings.tmpfs_mb == 64
    assert settings.bwrap == "bwrap"
    assert sorted(settings.allowed_imports) == sorted(DEFAULT_ALLOWED_IMPORTS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.network = True  # type: ignore[misc]


def test_network_is_off_unless_granted(contained: Callable[..., None]) -> None:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=3) as conn:
            conn.sendall(PG_SSL_REQUEST)
            host_answer = conn.recv(1)
    except OSError as exc:
        pytest.skip(f"PostgreSQL does not answer on 127.0.0.1:5432 here ({exc})")
    assert host_answer in (b"S", b"N")

    denied = run_statement(POSTGRES_STATEMENT, {"out": "string"}, processing="bulk")
    assert denied.verdict == "ok", denied.error
    assert "ConnectError" in denied.rows[0]["out"], denied.rows
    contained(denied)

    granted = run_statement(
        POSTGRES_STATEMENT,
        {"out": "string"},
        processing="bulk",
        settings=ProcessorSettings(network=True),
    )
    assert granted.verdict == "ok", granted.error
    (row,) = granted.rows
    assert "ConnectError" not in row["out"], row
    assert "RemoteProtocolError" in row["out"] or row["out"].startswith("answered "), row


def test_a_deployment_can_change_the_allow_list() -> None:
    settings = ProcessorSettings(allowed_imports=("json", "xml.etree", "statistics"))
    statement = (
        "import xml.etree\nfrom xml.etree import ElementTree\nimport statistics\n"
        "from json import dumps\n"
        "root = ElementTree.fromstring('<a><b>2</b><b>4</b></a>')\n"
        "values = [int(b.text) for b in root.findall('b')]\n"
        "return [{'out': dumps(statistics.mean(values))}]"
    )
    result = run_statement(statement, {"out": "string"}, processing="bulk", settings=settings)
    assert result.verdict == "ok", result.error
    assert result.rows == [{"out": "3"}]


@pytest.mark.parametrize(
    "statement", ["import math", "import pandas as pd", "from xml import etree"]
)
def test_modules_left_off_a_custom_allow_list_are_rejected(statement: str) -> None:
    settings = ProcessorSettings(allowed_imports=("json", "xml.etree"))
    result = run_statement(
        f"x = 1\n{statement}\nreturn []", {"out": "string?"}, processing="bulk", settings=settings
    )
    assert result.verdict == "rejected"
    assert re.search(r"(?i)\bline 2\b", result.error or ""), result.error


def test_the_statement_size_cap() -> None:
    settings = ProcessorSettings(max_statement_bytes=200)
    small = run_statement("return [{'out': 'x'}]", {"out": "string"}, processing="bulk",
                          settings=settings)  # fmt: skip
    assert small.verdict == "ok", small.error
    big = "x = 1\n" * 60 + "return [{'out': 'x'}]"
    result = run_statement(big, {"out": "string"}, processing="bulk", settings=settings)
    assert result.verdict == "rejected"
    assert "200" in (result.error or ""), result.error


def test_the_row_cap() -> None:
    settings = ProcessorSettings(max_rows=5)
    statement = "return [{'n': i} for i in range(N)]"
    at_cap = run_statement("N = 5\n" + statement, {"n": "int"}, processing="bulk",
                           settings=settings)  # fmt: skip
    assert at_cap.verdict == "ok", at_cap.error
    assert len(at_cap.rows) == 5
    over = run_statement("N = 6\n" + statement, {"n": "int"}, processing="bulk",
                         settings=settings)  # fmt: skip
    assert over.verdict == "failed"
    assert over.rows == []
    assert re.search(r"\b5\b|max_rows", over.error or ""), over.error


def test_the_row_cap_counts_all_rows_of_a_row_by_row_run() -> None:
    settings = ProcessorSettings(max_rows=5)
    statement = "return [{'n': INPUT_DATA[0]['n']}, {'n': INPUT_DATA[0]['n']}]"
    rows = [{"n": 1}, {"n": 2}, {"n": 3}]
    result = run_statement(statement, {"n": "int"}, rows, processing="row", settings=settings)
    assert result.verdict == "failed"
    assert result.rows == []


def test_the_output_size_cap() -> None:
    settings = ProcessorSettings(max_output_bytes=20_000)
    fits = run_statement("return [{'out': 'x' * 100}]", {"out": "string"}, processing="bulk",
                         settings=settings)  # fmt: skip
    assert fits.verdict == "ok", fits.error
    assert fits.rows == [{"out": "x" * 100}]
    over = run_statement("return [{'out': 'x' * 100000}]", {"out": "string"}, processing="bulk",
                         settings=settings)  # fmt: skip
    assert over.verdict == "failed"
    assert over.rows == []
    assert re.search(r"20[ _,]?000|max_output_bytes|too large", over.error or ""), over.error

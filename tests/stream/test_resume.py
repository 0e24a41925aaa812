"""Exactly once across restarts: a real subprocess streams rows into a component (the durable
log), a Parquet directory and a PostgreSQL table, and is killed with SIGKILL again and again,
at different points: in the subject, after the log commit, between sinks, inside the log's and
PostgreSQL's transactions, before a Parquet rename. The stream resumes from its offset each
time; at the end every sink holds every row exactly once.

The stream has no primary key, so a duplicate would show as a second row (an upsert would hide
it). Offsets are reported every 97 rows and the subject pauses every 40 rows, so autocommits
also land rows between offsets: those must be skipped when the subject re-sends them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from headwater import Workspace
from headwater.errors import HeadwaterError

ROWS = 4000  # enough that every kill point still has commits ahead of it

PROGRAM = """
import os, signal, sys, time
from headwater import stream

ROWS, home, out, dsn = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
kill_at = int(os.environ.get("KILL_AT", "-1"))


class Schema(stream.Schema):
    key: int
    name: str


class Source(stream.ConnectorSubject):
    start = 0

    def seek(self, offset):
        self.start = offset

    def run(self):
        for i in range(self.start, ROWS):
            if i == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            self.next(key=i, name=f"row {i}")
            if (i + 1) % 97 == 0:
                self.report_offset(i + 1)
            elif i % 40 == 0:
                time.sleep(0.003)  # a slow source: the autocommit lands rows between offsets


table = stream.read(Source(), schema=Schema, name="orders", autocommit_duration_ms=5)
stream.write_component(table)
stream.write_parquet(table, out)
stream.write_postgres(table, dsn, "orders")
stream.run(home=home)
"""

# (what kills the run, environment) -- failpoint counts are per process
KILLS = [
    ("subject, mid-stream", {"KILL_AT": "700"}),
    ("after the log commit", {"HEADWATER_FAILPOINT": "stream.after_log:4"}),
    ("between two sinks", {"HEADWATER_FAILPOINT": "stream.after_sink:5"}),
    ("inside the log's transaction", {"HEADWATER_FAILPOINT": "catalog.in_commit:3"}),
    (
        "inside PostgreSQL's transaction",
        {"HEADWATER_FAILPOINT": "stream.postgres_in_transaction:2"},
    ),
    ("before a Parquet rename", {"HEADWATER_FAILPOINT": "stream.parquet_before_rename:3"}),
]


def stream_once(program: Path, home: Path, out: Path, dsn: str, env: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, str(program), str(ROWS), str(home), str(out), dsn],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"the stream failed:\n{done.stderr}")
    return done.returncode


def keys_in_component(home: Path) -> list[int]:
    with Workspace(home=home) as ws:
        rows = ws.read_arrow("orders").to_pylist()
    assert {r["diff"] for r in rows} <= {1}
    return [r["key"] for r in rows]


def keys_in_parquet(out: Path) -> list[int]:
    files = sorted(out.glob("*.parquet"))  # a crash may leave a .tmp: never part of it
    return [k for f in files for k in pq.read_table(f).column("key").to_pylist()]


def keys_in_postgres(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as connection:
        return [r[0] for r in connection.execute("SELECT key FROM orders")]


def assert_no_duplicates(keys: list[int], where: str) -> None:
    assert len(keys) == len(set(keys)), f"{where}: duplicates {len(keys) - len(set(keys))}"


@pytest.mark.postgres
def test_every_row_once_after_repeated_sigkills(tmp_path: Path, postgres_dsn: str) -> None:
    program = tmp_path / "stream.py"
    program.write_text(textwrap.dedent(PROGRAM))
    home, out = tmp_path / "home", tmp_path / "parquet"

    for point, env in KILLS:
        code = stream_once(program, home, out, postgres_dsn, env)
        assert code == -signal.SIGKILL, f"the kill {point} did not happen"
        for keys, where in (
            (keys_in_component(home), "component"),
            (keys_in_parquet(out), "parquet"),
            (keys_in_postgres(postgres_dsn), "postgres"),
        ):
            assert_no_duplicates(keys, f"after a kill {point}, {where}")
    assert stream_once(program, home, out, postgres_dsn, {}) == 0

    expected = list(range(ROWS))
    assert sorted(keys_in_component(home)) == expected
    assert sorted(keys_in_parquet(out)) == expected
    assert sorted(keys_in_postgres(postgres_dsn)) == expected
    assert not list(out.glob("*.tmp")), "a temporary Parquet file survived the restart"


UPSERTS = """
import sys
from headwater import stream

home, values = sys.argv[1], sys.argv[2]


class Schema(stream.Schema):
    key: int = stream.column_definition(primary_key=True)
    value: str


class Source(stream.ConnectorSubject):
    def run(self):
        for key, value in enumerate(values.split(",")):
            self.next(key=key % 3, value=value)
            self.commit()


table = stream.read(Source(), schema=Schema, name="latest")
stream.write_component(table)
stream.run(home=home)
"""


def test_keyed_state_survives_a_restart(tmp_path: Path) -> None:
    """A restarted keyed stream compares new values with the state before the restart."""
    program = tmp_path / "upserts.py"
    program.write_text(textwrap.dedent(UPSERTS))
    home = tmp_path / "home"
    for values in ("a,b,c", "a,x,c"):  # the second run re-sends a and c unchanged, b as x
        subprocess.run([sys.executable, str(program), str(home), values], check=True)
    with Workspace(home=home) as ws:
        changes = ws.query("SELECT key, value, diff FROM latest ORDER BY time, diff").to_pylist()
        state = ws.query(
            "SELECT key, value FROM latest GROUP BY ALL HAVING sum(diff) > 0 ORDER BY key"
        ).to_pylist()
    assert [(c["key"], c["value"], c["diff"]) for c in changes] == [
        (0, "a", 1),
        (1, "b", 1),
        (2, "c", 1),  # the first run
        (1, "b", -1),
        (1, "x", 1),  # the second: only b changed
    ]
    assert state == [{"key": 0, "value": "a"}, {"key": 1, "value": "x"}, {"key": 2, "value": "c"}]


def test_offsets_are_json_and_seek_is_required(tmp_path: Path) -> None:
    from headwater import stream

    class NoSeek(stream.ConnectorSubject):
        def run(self) -> None:
            self.next(data="a")
            self.report_offset({"page": 1})

    table = stream.read(NoSeek(), name="noseek")
    stream.write_component(table)
    stream.run(home=tmp_path / "home")
    table = stream.read(NoSeek(), name="noseek")
    stream.write_component(table)
    with pytest.raises(HeadwaterError, match="does not define seek"):
        stream.run(home=tmp_path / "home")
    with Workspace(home=tmp_path / "home") as ws:
        checkpoint = ws.catalog.checkpoint(ws.catalog.component("noseek").id)
    assert checkpoint is not None
    assert json.loads(json.dumps(checkpoint.offset)) == {"offset": {"page": 1}, "after": 0}


def test_a_resumable_subject_stopped_before_its_first_offset_lands_each_row_once(
    tmp_path: Path,
) -> None:
    """Rows committed before any offset was reported, then a stop: the restarted subject (it
    has seek, so it resumes) starts from its beginning, and the rows that had landed are dropped
    when it sends them again. (Under load, the first offset can be far behind the autocommits.)"""
    from headwater import stream

    class Schema(stream.Schema):
        key: int

    class Pages(stream.ConnectorSubject):
        def __init__(self, fail_after: int | None) -> None:
            super().__init__()
            self.fail_after = fail_after
            self.start = 0

        def seek(self, offset: Any) -> None:
            self.start = offset

        def run(self) -> None:
            for key in range(self.start, 10):
                self.next(key=key)
                if key == 2:
                    self.commit()  # rows 0-2 land, with no offset yet
                if key == self.fail_after:
                    raise ConnectionError("the source went away")
                if key == 5:
                    self.report_offset(6)

    home = tmp_path / "home"
    table = stream.read(Pages(fail_after=3), schema=Schema, name="pages")
    stream.write_component(table)
    with pytest.raises(ConnectionError):
        stream.run(home=home)
    table = stream.read(Pages(fail_after=None), schema=Schema, name="pages")
    stream.write_component(table)
    stream.run(home=home)
    with Workspace(home=home) as ws:
        keys = ws.read_arrow("pages").column("key").to_pylist()
    assert sorted(keys) == list(range(10)), "a row landed twice or not at all"

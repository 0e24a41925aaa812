"""Fixtures for the processor suite: what this host looks like (so a test can tell whether a
statement saw it) and one check, `contained`, that a result carries no evidence of escaping the
sandbox. Every run in this suite goes through the real bubblewrap sandbox; nothing is mocked.

Evidence means: output of `id` (`uid=0(root)`), lines of the host's /etc/passwd, this machine's
id, hostname and /etc/hostname, the pids of the test process and its parent, and a secret that
every test puts into its own environment (so a sandbox that inherits the parent's environment
shows up here, whatever the statement did).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from headwater.processor import ProcessorResult

REPO = Path(__file__).resolve().parents[2]
SECRET_ENV = "HEADWATER_TEST_PARENT_SECRET"

# What only a statement that ran `id` or read the host's passwd can produce: `uid=0(root)`,
# `gid=65534(nogroup)`, `groups=...`, passwd lines. (Mount options such as `resuid=65534` in
# /proc/self/mountinfo are not evidence, hence the parenthesis and the word boundary.)
EVIDENCE_PATTERNS = (
    r"(?<![\w])(uid|gid|groups)=\d+\(",
    r"\broot:x:0:0:",
    r"\bdaemon:x:\d+:",
)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class Host:
    """Facts about the machine the tests run on; none of them may appear in a statement's output."""

    hostname: str
    etc_hostname: str | None
    machine_id: str | None
    pids: tuple[int, ...]
    repo: Path
    runtime_prefixes: tuple[str, ...]  # the interpreter and venv the sandbox binds read-only

    def strings(self) -> list[str]:
        """Host facts long enough to search for as plain substrings anywhere in a result."""
        found = [self.machine_id, self.etc_hostname, self.hostname]
        return [s for s in found if s is not None and len(s) >= 6]

    def words(self) -> list[str]:
        """Short host facts (a hostname like `vm`, pids): searched as whole words in rows only."""
        short = [s for s in (self.hostname, self.etc_hostname) if s is not None and len(s) < 6]
        return short + [str(pid) for pid in self.pids]


@pytest.fixture(scope="session")
def host() -> Host:
    return Host(
        hostname=socket.gethostname(),
        etc_hostname=_read("/etc/hostname"),
        machine_id=_read("/etc/machine-id"),
        pids=(os.getpid(), os.getppid()),
        repo=REPO,
        runtime_prefixes=tuple(
            {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix}
        ),
    )


@pytest.fixture(autouse=True)
def parent_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A secret in the test process's environment, set before any run; it must never come back."""
    token = f"hw-parent-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv(SECRET_ENV, token)
    yield token


@pytest.fixture
def contained(host: Host, parent_secret: str) -> Callable[..., None]:
    """contained(result, *more_secrets): assert the result shows nothing of the host.

    The whole of `to_json()` (rows, logs, error, traceback) is searched for the fixed evidence
    strings, the secrets and the long host facts; the rows alone for the short ones (whole words).
    """

    def check(result: ProcessorResult, *secrets: str) -> None:
        everything = json.dumps(result.to_json(), default=str)
        rows = json.dumps(result.rows, default=str)
        for pattern in EVIDENCE_PATTERNS:
            found = re.search(pattern, everything)
            assert found is None, f"escape evidence {found} in {everything[:2000]}"
        for needle in (parent_secret, *secrets, *host.strings()):
            assert needle not in everything, f"escape evidence {needle!r} in {everything[:2000]}"
        for word in host.words():
            assert not re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w.-])", rows), (
                f"host fact {word!r} in rows {rows[:2000]}"
            )

    return check

"""Attacks beyond the public corpus, each with evidence checks on the host's side.

The statements use only what a user may write (allow-listed imports), reach for the host through
public attributes of allow-listed libraries (numpy's ctypeslib, pandas' and matplotlib's file
helpers, io.FileIO, pandas' ThreadPoolExecutor) and report what they saw in their rows, catching
every exception so that the OS sandbox, not the language policy, is what the test exercises.
Every result also passes `contained` (conftest.py).
"""

from __future__ import annotations

import os
import re
import socket
import string
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.processor import ProcessorResult, ProcessorSettings, run_statement

READ_SCHEMA = {"path": "string", "texts": "json"}

# Each reader returns the file's text or raises; the statement records None when it raises.
READ_STATEMENT = r"""
import io
import numpy as np
import pandas as pd
READERS = {
    'fileio': lambda p: io.FileIO(p).read().decode('latin-1'),
    'open_code': lambda p: io.open_code(p).read().decode('latin-1'),
    'numpy': lambda p: bytes(np.fromfile(p, dtype=np.uint8).tolist()).decode('latin-1'),
    'pandas': lambda p: '\n'.join(pd.read_csv(
        p, header=None, sep='\x07', engine='python', quoting=3, dtype=str,
        keep_default_na=False, skip_blank_lines=False)[0].tolist()),
    'loadtxt': lambda p: '\n'.join(np.loadtxt(
        p, dtype=str, delimiter='\x07', comments=None).reshape(-1).tolist()),
}
out = []
for path in PATHS:
    got = {}
    for how in READERS:
        try:
            got[how] = READERS[how](path)[:20000]
        except Exception:
            got[how] = None
    out.append({'path': path, 'texts': got})
return out
"""


def read_statement(paths: list[str]) -> str:
    return f"PATHS = {paths!r}\n" + READ_STATEMENT.lstrip("\n")


def texts(result: ProcessorResult, path: str) -> list[str]:
    """What the readers got from `path` inside the sandbox (one row per path, under 20 rows so
    that a debug run shows them all)."""
    rows = [row for row in result.rows if row["path"] == path]
    return [text for row in rows for text in row["texts"].values() if text is not None]


def fingerprint(path: Path) -> str:
    """The longest line of a host file: if it shows up in output, the file was read."""
    return max(path.read_text().splitlines(), key=len).strip()


@pytest.fixture
def marker(tmp_path: Path) -> tuple[Path, str]:
    """A file on the host, outside anything the sandbox may bind, holding a unique token."""
    token = f"hw-host-marker-{uuid.uuid4().hex}"
    path = tmp_path / "marker.txt"
    path.write_text(f"{token}\n")
    return path, token


def allowed_prefixes(host: Any) -> tuple[str, ...]:
    """Host paths the sandbox may show read-only: the interpreter, the venv, the package."""
    return (*host.runtime_prefixes, str(host.repo / "headwater"))


# --- the evidence check itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    "evidence",
    [
        "secret",
        "uid=0(root) gid=0(root) groups=0(root)",
        "root:x:0:0:root:/root:/bin/bash",
        "hostname",
        "pid",
    ],
)
def test_the_evidence_check_sees_what_it_looks_for(
    evidence: str, host: Any, parent_secret: str, contained: Callable[..., None]
) -> None:
    """Rows that carry host evidence (handed in as input, returned as-is) fail `contained`."""
    value = {
        "secret": f"env: {parent_secret}",
        "hostname": f"host {host.hostname}",
        "pid": f"pid {host.pids[0]}",
    }.get(evidence, evidence)
    result = run_statement(
        "return INPUT_DATA", {"out": "string"}, [{"out": value}], processing="bulk"
    )
    assert result.rows == [{"out": value}]
    with pytest.raises(AssertionError):
        contained(result)


# --- host files ------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["run", "debug"])
def test_host_files_cannot_be_read(
    debug: bool, host: Any, marker: tuple[Path, str], contained: Callable[..., None]
) -> None:
    marker_path, token = marker
    readme, pyproject = host.repo / "README.md", host.repo / "pyproject.toml"
    host_only = [
        str(readme),
        str(pyproject),
        str(marker_path),
        f"/proc/1/root{readme}",
        "/proc/1/cwd/README.md",
        f"/proc/self/root{marker_path}",
        "/etc/shadow",
        "/root/.bash_history",
        "/root/.ssh/id_rsa",
    ]
    paths = [*host_only, "/etc/passwd", "/etc/hostname", "/proc/self/status"]
    result = run_statement(read_statement(paths), READ_SCHEMA, processing="bulk", debug=debug)

    assert result.verdict == "ok", result.error
    # The readers work in the sandbox: the worker's own status is readable.
    assert any("Name:" in text for text in texts(result, "/proc/self/status"))
    for path in host_only:
        assert texts(result, path) == [], f"{path} was readable in the sandbox"
    for text in texts(result, "/etc/hostname"):
        assert text.strip() not in {host.hostname, host.etc_hostname}
    contained(result, token, fingerprint(readme), fingerprint(pyproject))


def test_the_environment_of_the_parent_does_not_reach_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, contained: Callable[..., None]
) -> None:
    letters = "".join(c for c in uuid.uuid4().hex if c in string.ascii_letters)
    tz_token = f"HWTZ{letters.upper()}"
    monkeypatch.setenv("TZ", f"{tz_token}+3")  # time.tzname would show it
    monkeypatch.setenv("HW_DATABASE_PASSWORD", "hw-db-password-" + uuid.uuid4().hex)
    statement = read_statement(["/proc/self/environ", "/proc/1/environ", "/proc/2/environ"])
    statement = statement.replace(
        "return out",
        "import time\nout.append({'path': 'tz', 'texts': {'time': str(time.tzname)}})\nreturn out",
    )
    result = run_statement(statement, READ_SCHEMA, processing="bulk")
    assert result.verdict == "ok", result.error
    assert texts(result, "tz"), "time.tzname was not reported"
    contained(result, tz_token, os.environ["HW_DATABASE_PASSWORD"])


# --- what the file system shows --------------------------------------------------------------

LIST_STATEMENT = r"""
import matplotlib.pyplot as plt
import matplotlib
import pandas as pd
pd.DataFrame([{'a': 1}]).to_csv('/tmp/hw_control.csv')
EXTENSIONS = ['md', 'toml', 'txt', 'json', 'cfg', 'csv', 'py', 'sh', 'pid', 'lock', 'conf',
              'env', 'key', 'pem', 'yml', 'yaml', 'ini', 'log', 'db', 'sqlite', 'gitignore']
found = []
for root in ROOTS:
    try:
        found.extend(matplotlib.font_manager.list_fonts(root, EXTENSIONS))
    except Exception:
        pass
shown = [f for f in found if not any(f.startswith(a) for a in ALLOWED)]
exists = [p for p in PROBES if pd.io.common.file_exists(p)]
return [{'found': len(found), 'shown': shown[:2000], 'exists': exists}]
"""

HOST_ONLY_DIRS = (
    "/root/", "/home/", "/work/", "/srv/", "/opt/", "/mnt/", "/media/", "/boot/", "/old_root/",
    "/farm/", "/var/", "/run/", "/etc/ssh", "/etc/shadow", "/etc/postgresql", "/etc/mysql",
)  # fmt: skip


def test_listing_the_file_system_shows_no_host_directories(
    host: Any, marker: tuple[Path, str], contained: Callable[..., None]
) -> None:
    allowed = allowed_prefixes(host)
    roots = ["/tmp", "/root", "/home", "/work", "/srv", "/opt", "/mnt", "/var", "/run", "/etc",
             "/old_root", "/farm", "/media", "/boot"]  # fmt: skip
    probes = [
        str(host.repo / "README.md"),
        str(host.repo / "tests"),
        str(host.repo / ".git"),
        str(marker[0]),
        "/root/.bash_history",
        "/var/run/postgresql/.s.PGSQL.5432",
        "/run/postgresql",
        "/var/run/docker.sock",
        "/etc/shadow",
    ]
    statement = f"ROOTS = {roots!r}\nALLOWED = {allowed!r}\nPROBES = {probes!r}\n"
    result = run_statement(
        statement + LIST_STATEMENT.lstrip("\n"),
        {"found": "int", "shown": "json", "exists": "json"},
        processing="bulk",
    )

    assert result.verdict == "ok", result.error
    (row,) = result.rows
    assert "/tmp/hw_control.csv" in row["shown"]  # the walk works inside the sandbox
    leaked = [path for path in row["shown"] if path.startswith(HOST_ONLY_DIRS)]
    assert leaked == [], f"host paths visible in the sandbox: {leaked[:20]}"
    assert row["exists"] == [], f"host paths exist in the sandbox: {row['exists']}"
    contained(result)


def test_mountinfo_shows_only_the_bound_runtime(host: Any, contained: Callable[..., None]) -> None:
    result = run_statement(read_statement(["/proc/self/mountinfo"]), READ_SCHEMA, processing="bulk")
    assert result.verdict == "ok", result.error
    readable = texts(result, "/proc/self/mountinfo")
    assert readable, "no reader could read /proc/self/mountinfo"
    mounts = [line.split()[4] for line in readable[0].splitlines() if len(line.split()) > 4]
    assert "/tmp" in mounts and "/proc" in mounts, mounts
    allowed = allowed_prefixes(host)
    for mount in mounts:
        if mount.startswith(allowed):
            continue
        assert not (mount + "/").startswith(HOST_ONLY_DIRS), f"host path mounted: {mount}"
    contained(result)


def test_the_worker_has_no_capabilities_and_runs_under_seccomp(
    contained: Callable[..., None],
) -> None:
    result = run_statement(read_statement(["/proc/self/status"]), READ_SCHEMA, processing="bulk")
    assert result.verdict == "ok", result.error
    status = texts(result, "/proc/self/status")[0]
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert int(fields["CapEff"].strip(), 16) == 0, fields["CapEff"]
    assert int(fields["CapPrm"].strip(), 16) == 0, fields["CapPrm"]
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # a filter is loaded
    contained(result)


# --- writing ---------------------------------------------------------------------------------

WRITE_STATEMENT = r"""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
plt.plot([1, 2])
out = []
for target in TARGETS:
    for how in ['savefig', 'to_csv', 'tofile']:
        try:
            if how == 'savefig':
                plt.savefig(target + '.png')
            elif how == 'to_csv':
                pd.DataFrame([{'a': 1}]).to_csv(target + '.csv')
            else:
                np.arange(3).tofile(target + '.bin')
            out.append({'target': target, 'how': how, 'written': True})
        except Exception:
            out.append({'target': target, 'how': how, 'written': False})
return out
"""


@pytest.fixture
def write_targets(host: Any, tmp_path: Path) -> Iterator[list[str]]:
    """Host paths (without suffix) a statement tries to write; removed again if it managed."""
    name = f"hw_probe_{uuid.uuid4().hex[:12]}"
    targets = [
        str(host.repo / "headwater" / name),
        str(host.repo / name),
        f"{host.runtime_prefixes[0]}/{name}",
        f"/usr/{name}",
        f"/etc/{name}",
        str(tmp_path / name),
        f"/tmp/{name}",
        f"/{name}",
    ]
    yield targets
    for target in targets:
        for suffix in (".png", ".csv", ".bin"):
            Path(target + suffix).unlink(missing_ok=True)


def test_writes_never_reach_the_host(
    write_targets: list[str], contained: Callable[..., None]
) -> None:
    statement = f"TARGETS = {write_targets!r}\n" + WRITE_STATEMENT.lstrip("\n")
    result = run_statement(
        statement, {"target": "string", "how": "string", "written": "bool"}, processing="bulk"
    )
    on_host = [
        t + s for t in write_targets for s in (".png", ".csv", ".bin") if Path(t + s).exists()
    ]
    assert on_host == [], f"the sandbox wrote to the host: {on_host}"
    assert result.verdict == "ok", result.error
    written = {(r["target"], r["how"]) for r in result.rows if r["written"]}
    tmp_target = next(t for t in write_targets if t.startswith("/tmp/hw_probe"))
    # The sandbox's own /tmp is writable (and private: nothing appeared on the host above).
    assert (tmp_target, "to_csv") in written
    contained(result)


def test_tmp_is_scratch_space_for_pandas_and_numpy() -> None:
    statement = textwrap.dedent(
        """
        import numpy as np
        import pandas as pd
        pd.DataFrame([{'a': 1}, {'a': 2}]).to_csv('/tmp/t.csv', index=False)
        np.arange(3, dtype=np.int64).tofile('/tmp/t.bin')
        return [{'csv': pd.read_csv('/tmp/t.csv')['a'].tolist(),
                 'bin': np.fromfile('/tmp/t.bin', dtype=np.int64).tolist()}]
        """
    )
    result = run_statement(statement, {"csv": "json", "bin": "json"}, processing="bulk")
    assert result.verdict == "ok", result.error
    assert result.rows == [{"csv": [1, 2], "bin": [0, 1, 2]}]


def test_filling_tmp_beyond_its_cap_fails_cleanly(contained: Callable[..., None]) -> None:
    statement = (  # each file is about 4 MB of CSV
        "import pandas as pd\nframe = pd.DataFrame([{'a': 'x' * 1000}] * 4000)\n"
        "for i in range(N):\n    frame.to_csv('/tmp/fill' + str(i))\nreturn [{'files': N}]"
    )
    settings = ProcessorSettings(tmpfs_mb=8)
    fits = run_statement("N = 1\n" + statement, {"files": "int"}, processing="bulk",
                         settings=settings)  # fmt: skip
    assert fits.verdict == "ok", fits.error
    full = run_statement("N = 6\n" + statement, {"files": "int"}, processing="bulk",
                         settings=settings)  # fmt: skip
    assert full.verdict == "failed"
    assert full.rows == []
    assert "No space left on device" in (full.error or ""), full.error
    contained(full)


# --- network ---------------------------------------------------------------------------------

PG_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
REDIS_PING = b"PING\r\n"


def host_answer(port: int, payload: bytes) -> bytes | None:
    """What a service on the host's loopback answers to `payload` (None: nothing listens)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
            conn.sendall(payload)
            return conn.recv(5)
    except OSError:
        return None


# Two ways in: a raw socket through ssl (the language policy may refuse it first) and httpx,
# whose sockets only the OS sandbox can stop. A connection that was made gets an answer or a
# protocol error; one never made is an httpx ConnectError.
CONNECT_STATEMENT = """
import httpx
import ssl
out = []
try:
    conn = ssl.create_connection((HOST, PORT), timeout=3)
    conn.sendall(PAYLOAD)
    out.append('connected ' + repr(conn.recv(5)))
except Exception as e:
    out.append('refused ' + str(e))
try:
    r = httpx.get('http://' + HOST + ':' + str(PORT) + '/', timeout=3)
    out.append('answered ' + str(r.status_code))
except Exception as e:
    out.append(str(type(e)) + ' ' + str(e))
return [{'raw': out[0], 'http': out[1]}]
"""


def connect_statement(host: str, port: int, payload: bytes) -> str:
    return f"HOST = {host!r}\nPORT = {port}\nPAYLOAD = {payload!r}\n" + CONNECT_STATEMENT


@pytest.mark.parametrize(
    ("port", "payload"), [(5432, PG_SSL_REQUEST), (6379, REDIS_PING)], ids=["postgres", "redis"]
)
def test_host_services_on_loopback_are_out_of_reach(
    port: int, payload: bytes, contained: Callable[..., None]
) -> None:
    answer = host_answer(port, payload)
    if answer is None:
        pytest.skip(f"nothing answers on 127.0.0.1:{port} on this host")
    result = run_statement(
        connect_statement("127.0.0.1", port, payload),
        {"raw": "string", "http": "string"},
        processing="bulk",
    )
    assert result.verdict == "ok", result.error
    (row,) = result.rows
    assert row["raw"].startswith("refused "), row
    assert "ConnectError" in row["http"], row
    contained(result, repr(answer))


def test_names_do_not_resolve_and_http_goes_nowhere(contained: Callable[..., None]) -> None:
    statement = textwrap.dedent(
        """
        import httpx
        out = []
        for url in ['http://localhost:5432/', 'http://example.com/', 'http://127.0.0.1:6379/']:
            try:
                r = httpx.get(url, timeout=3)
                out.append({'url': url, 'out': 'answered ' + str(r.status_code)})
            except Exception as e:
                out.append({'url': url, 'out': 'refused ' + str(e)})
        return out
        """
    )
    result = run_statement(statement, {"url": "string", "out": "string"}, processing="bulk")
    assert result.verdict == "ok", result.error
    assert [r["out"].split(" ")[0] for r in result.rows] == ["refused"] * 3, result.rows
    contained(result)


def test_the_postgres_unix_socket_is_out_of_reach(contained: Callable[..., None]) -> None:
    path = "/var/run/postgresql/.s.PGSQL.5432"
    if not Path(path).exists():
        pytest.skip(f"{path} does not exist on this host")
    statement = textwrap.dedent(
        f"""
        import httpx
        try:
            t = httpx.HTTPTransport(uds={path!r})
            r = httpx.Client(transport=t).get('http://x/', timeout=3)
            out = 'answered ' + r.text
        except Exception as e:
            out = 'refused ' + str(e)
        return [{{'out': out}}]
        """
    )
    result = run_statement(statement, {"out": "string"}, processing="bulk")
    assert result.verdict == "ok", result.error
    (row,) = result.rows
    # A connection that was made gets a protocol error from PostgreSQL; one never made fails
    # with the errno of the missing, forbidden or refused socket.
    assert re.search(
        r"No such file|Operation not permitted|Permission denied|Connection refused", row["out"]
    ), row
    contained(result)


# --- processes, threads, signals, ctypes -----------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "import multiprocessing\nmultiprocessing.Process(target=print).start()",
        "from concurrent import futures",
        "import concurrent.futures",
        "import subprocess",
        "import threading",
        "import signal",
        "import ctypes",
        "import socket",
    ],
)
def test_process_and_system_modules_cannot_be_imported(statement: str) -> None:
    result = run_statement(f"x = 1\n{statement}\nreturn []", {"out": "string?"}, processing="bulk")
    assert result.verdict == "rejected"
    assert re.search(r"(?i)\bline 2\b", result.error or ""), result.error


def test_a_thread_flood_hits_the_process_limit(contained: Callable[..., None]) -> None:
    statement = textwrap.dedent(
        """
        import pandas as pd
        import time
        pool = pd.io.parsers.readers.ThreadPoolExecutor(max_workers=3000)
        started = 0
        error = None
        try:
            for i in range(3000):
                pool.submit(time.sleep, 1)
                started += 1
        except RuntimeError as e:
            error = str(e)
        return [{'started': started, 'error': error}]
        """
    )
    result = run_statement(statement, {"started": "int", "error": "string?"}, processing="bulk")
    if result.verdict == "ok":
        (row,) = result.rows
        assert row["error"] is not None and row["started"] < 3000, row
    else:
        assert result.verdict == "failed"
    contained(result)


def libc_dir() -> str:
    for directory in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64"):
        if Path(directory, "libc.so.6").exists():
            return directory
    pytest.skip("no libc.so.6 in a known place on this host")


def test_ctypes_through_numpy_cannot_signal_fork_exec_or_nest(
    host: Any, contained: Callable[..., None]
) -> None:
    statement = textwrap.dedent(
        f"""
        import numpy as np
        try:
            libc = np.ctypeslib.load_library('libc.so.6', {libc_dir()!r})
        except Exception as e:
            return [{{'loaded': False, 'calls': {{'why': str(e)}}}}]
        calls = {{}}
        calls['pid'] = libc.getpid()
        calls['ppid'] = libc.getppid()
        calls['kill_parent'] = [libc.kill(pid, 0) for pid in {list(host.pids)!r}]
        calls['unshare_user'] = libc.unshare(0x10000000)
        calls['system'] = libc.system(b'id; cat /etc/hostname')
        child = libc.fork()
        if child == 0:
            libc.exit(0)
        calls['fork'] = child
        return [{{'loaded': True, 'calls': calls}}]
        """
    )
    result = run_statement(statement, {"loaded": "bool", "calls": "json"}, processing="bulk")
    contained(result)
    if result.verdict != "ok" or not result.rows[0]["loaded"]:
        return  # the policy refused the gadget itself; nothing of the host came back either
    calls = result.rows[0]["calls"]
    assert calls["pid"] not in host.pids and calls["ppid"] not in host.pids, calls
    assert calls["kill_parent"] == [-1] * len(host.pids), calls  # the test process is invisible
    assert calls["unshare_user"] == -1, calls  # no nested user namespaces
    assert calls["system"] != 0, calls  # `id` never ran
    assert calls["fork"] == -1, calls


# --- resource limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "import time\ntime.sleep(10 ** 6)\nreturn []",
        "while True:\n    try:\n        await sleep(1000)\n    except BaseException:\n        pass",
    ],
    ids=["blocking-sleep", "swallowed-cancellation"],
)
def test_a_statement_that_hangs_is_stopped_by_the_wall_clock(
    statement: str, contained: Callable[..., None]
) -> None:
    settings = ProcessorSettings(timeout_s=2, cpu_s=30)
    result = run_statement(statement, {"out": "string?"}, processing="bulk", settings=settings)
    assert result.verdict == "failed"
    assert result.rows == []
    assert re.search(r"(?i)wall[- ]?clock|timeout_s", result.error or ""), result.error
    contained(result)


def test_a_busy_loop_is_stopped_by_the_cpu_limit(contained: Callable[..., None]) -> None:
    settings = ProcessorSettings(timeout_s=60, cpu_s=2)
    control = run_statement("return [{'out': 'x'}]", {"out": "string"}, processing="bulk",
                            settings=settings)  # fmt: skip
    assert control.verdict == "ok", control.error
    result = run_statement("while True:\n    pass", {"out": "string?"}, processing="bulk",
                           settings=settings)  # fmt: skip
    assert result.verdict == "failed"
    assert "cpu" in (result.error or "").lower(), result.error
    contained(result)


@pytest.mark.parametrize(
    ("statement", "verdict"),
    [
        ("return [{'out': 'x'}]", "ok"),
        ("x = bytearray(2 * 1024 ** 3)\nreturn []", "failed"),
        ("chunks = []\nwhile True:\n    chunks.append('x' * 10 ** 7)", "failed"),
        ("import numpy as np\na = np.ones((20000, 20000))\nreturn []", "failed"),
    ],
    ids=["control", "one-allocation", "creeping", "numpy"],
)
def test_a_memory_hog_is_stopped_by_the_memory_limit(
    statement: str, verdict: str, contained: Callable[..., None]
) -> None:
    settings = ProcessorSettings(memory_mb=512, timeout_s=60)
    result = run_statement(statement, {"out": "string"}, processing="bulk", settings=settings)
    assert result.verdict == verdict, result.error
    if verdict == "failed":
        assert result.rows == []
        assert "memory" in (result.error or "").lower(), result.error
    contained(result)

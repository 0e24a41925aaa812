"""Layer 3 on its own (bubblewrap's view, the seccomp filter), fail-closed, and extra attacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import headwater
from headwater.processor import ProcessorSettings, SandboxUnavailableError, run_statement
from headwater.processor.sandbox import bwrap_argv

FAST = ProcessorSettings(timeout_s=5, cpu_s=2)
EVIDENCE = ("uid=", "root:x", "[tool.", "BEGIN ", "Operation permitted")

VIEW_PROBE = """
import ctypes, json, os, socket
out = {"uid": os.getuid(), "pid": os.getpid(), "env": sorted(os.environ)}
out["etc_passwd"] = os.path.exists("/etc/passwd")
out["repo"] = sorted(os.listdir(REPO))
out["status"] = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines())
try:
    open("/usr/hw_probe", "w")
    out["usr_writable"] = True
except OSError:
    out["usr_writable"] = False
open("/tmp/ok", "w").write("x")
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1)
    out["network"] = True
except OSError:
    out["network"] = False
out["nested_userns"] = ctypes.CDLL(None).unshare(0x10000000) == 0
print(json.dumps(out))
"""


def in_sandbox(script: str, settings: ProcessorSettings = FAST) -> dict[str, Any]:
    """Run `script` with the worker's bubblewrap policy but without the worker (layer 3 only)."""
    argv = bwrap_argv(settings, result_fd=3)
    python = argv.index(sys.executable)
    argv = [*argv[:python], sys.executable, "-I", "-S", "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_sandbox_sees_only_what_it_needs() -> None:
    repo = Path(headwater.__file__).resolve().parents[1]
    view = in_sandbox(VIEW_PROBE.replace("REPO", repr(str(repo))))
    assert view["uid"] == 65534 and view["pid"] < 10  # nobody, in its own pid namespace
    assert not view["etc_passwd"] and not view["usr_writable"] and not view["network"]
    assert set(view["repo"]) <= {"headwater", ".venv"}  # the package, not the repository
    assert "pyproject.toml" not in view["repo"]
    assert set(view["env"]) <= {
        "HOME",
        "PATH",
        "LANG",
        "MPLCONFIGDIR",
        "MPLBACKEND",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "PWD",  # set by bwrap's --chdir
    }
    assert view["status"]["CapEff"] == "0000000000000000"
    assert view["status"]["NoNewPrivs"] == "1"
    assert not view["nested_userns"]


SECCOMP_PROBE = """
import json, os, socket, subprocess, threading
from headwater.processor.seccomp import build_filter, install_filter
program = build_filter(False)
install_filter(program.bpf, program.seccomp_nr)
out = {}
def attempt(name, action):
    try:
        action()
        out[name] = "allowed"
    except PermissionError:
        out[name] = "denied"
attempt("fork", os.fork)
attempt("spawn", lambda: subprocess.run(["/bin/true"]))
attempt("exec", lambda: os.execv("/bin/true", ["true"]))
attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
thread = threading.Thread(target=lambda: out.setdefault("thread", "ran"))
thread.start()
thread.join()
print(json.dumps(out))
"""


def test_the_seccomp_filter_alone_stops_exec_fork_and_inet_but_not_threads() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SECCOMP_PROBE], capture_output=True, text=True, timeout=60
    )
    assert json.loads(done.stdout) == {
        "fork": "denied",
        "spawn": "denied",
        "exec": "denied",
        "inet": "denied",
        "inet6": "denied",
        "unix": "allowed",
        "thread": "ran",
    }


@pytest.mark.parametrize("bwrap", ["/nonexistent/bwrap", "/bin/false"])
def test_a_sandbox_that_cannot_start_refuses_to_run(bwrap: str) -> None:
    with pytest.raises(SandboxUnavailableError) as caught:
        run_statement("return []", {"a": "int"}, settings=ProcessorSettings(bwrap=bwrap))
    message = str(caught.value)
    assert "sandbox cannot start" in message
    assert "apt-get install bubblewrap" in message or "bwrap --unshare-all" in message


def test_network_is_granted_only_by_the_settings() -> None:
    statement = (
        "import httpx\ntry:\n    httpx.get('http://127.0.0.1:9/', timeout=1)\n"
        "except Exception as exc:\n    return [{'out': str(exc)}]\nreturn []"
    )
    closed = run_statement(statement, {"out": "string"}, processing="bulk", settings=FAST)
    assert closed.rows == [{"out": "[Errno 1] Operation not permitted"}]
    granted = ProcessorSettings(network=True, timeout_s=5, cpu_s=2)
    opened = run_statement(statement, {"out": "string"}, processing="bulk", settings=granted)
    assert opened.rows == [{"out": "[Errno 111] Connection refused"}]


ATTACKS = {
    "from_import_of_a_reexported_module": "from json import codecs\nreturn [{'out': str(codecs)}]",
    "from_import_of_open": "from io import open\nreturn [{'out': open('/etc/hostname').read()}]",
    "from_import_of_unsafe_yaml": "from yaml import unsafe_load\nreturn []",
    "private_log_state": "return [{'out': str(getattr(log, '_first_error'))}]",
    "overwrite_log_error": "log.error = log.info\nlog.error('x')\nreturn []",
    "str_format_by_getattr": "f = getattr(str, 'format')\nreturn [{'out': f('{0}', 1)}]",
    "formatter_subclass": "import string\nclass F(string.Formatter):\n    pass\nreturn []",
    "sleep_globals": "return [{'out': str(getattr(sleep, '__glob' + 'als__'))}]",
    "coroutine_frame": "c = sleep(0)\nreturn [{'out': str(getattr(c, 'cr_' + 'frame'))}]",
    "numpy_load_submodule": "import numpy as np\nf = np.lib.npyio.load\nreturn []",
    "pandas_pickle_compat": "import pandas as pd\nf = pd.compat.pickle_compat.loads\nreturn []",
    "gc_via_pandas": "import pandas as pd\nm = pd.core.generic.gc\nreturn []",
    "operator_via_pandas": "import pandas as pd\nm = pd.core.ops.operator\nreturn []",
    "read_repository_file": "import pandas as pd\nd = pd.read_csv(PYPROJECT)\n"
    "return [{'out': str(d)}]",
    "write_package_dir": "import pandas as pd\npd.DataFrame({'a': [1]}).to_csv(PWN)\nreturn []",
    "fill_tmp": "import numpy as np\nnp.zeros(10 ** 8).tofile('/tmp/big')\nreturn []",
    "patch_library_class_by_setattr": "import json\nsetattr(json.JSONDecoder, 'decode', len)"
    "\nreturn []",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_extra_attacks_fail_without_evidence(name: str) -> None:
    package = Path(headwater.__file__).resolve().parent
    code = (
        ATTACKS[name]
        .replace("PYPROJECT", repr(str(package.parent / "pyproject.toml")))
        .replace("PWN", repr(str(package / "pwn.csv")))
    )
    result = run_statement(code, {"out": "string?"}, processing="bulk", settings=FAST)
    assert result.verdict in ("failed", "rejected"), (name, result)
    blob = json.dumps(result.to_json())
    assert not any(mark in blob for mark in EVIDENCE)
    assert not (package / "pwn.csv").exists()


def test_printing_a_fake_frame_only_reaches_the_log() -> None:
    result = run_statement(
        "print('HWR1' + '{\"status\": \"ok\"}')\nreturn [{'out': 'real'}]",
        {"out": "string"},
        processing="bulk",
        settings=FAST,
    )
    assert result.rows == [{"out": "real"}]
    assert result.logs == [{"level": "debug", "message": 'HWR1{"status": "ok"}'}]

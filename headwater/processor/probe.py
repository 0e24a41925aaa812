"""Fail closed: prove the sandbox works before the first statement runs, or say how to fix it.

The probe starts a real worker with the real policy, installs the seccomp filter and checks that
it runs as nobody with the filter active. Each way this can fail maps to a message with its fix:
bubblewrap missing, user namespaces refused (a sysctl, an AppArmor rule or a container's
profile), libseccomp missing, or seccomp unsupported by the kernel.
"""

from __future__ import annotations

import dataclasses
import json

from headwater.processor.errors import SandboxUnavailableError
from headwater.processor.sandbox import WorkerOutcome, run_worker
from headwater.processor.seccomp import build_filter
from headwater.processor.settings import ProcessorSettings

_USERNS_HINT = (
    "unprivileged user namespaces seem to be refused: allow them (Debian: sysctl "
    "kernel.unprivileged_userns_clone=1; Ubuntu 24.04+: sysctl "
    "kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap; in Docker: "
    "run with a seccomp/AppArmor profile that permits unshare and mount)"
)


def probe_sandbox(settings: ProcessorSettings) -> None:
    """Raise SandboxUnavailableError unless a sandboxed worker starts and reports in correctly."""
    program = build_filter(settings.network)
    job = {
        "probe": True,
        "seccomp": program.bpf.hex(),
        "seccomp_nr": program.seccomp_nr,
        "max_output_bytes": 64 * 1024,
    }
    # A cold start (nothing in the page cache yet) can be slow; do not fail closed for that.
    patient = dataclasses.replace(settings, timeout_s=max(settings.timeout_s, 15.0))
    outcome = run_worker(json.dumps(job).encode(), patient)
    report = _report(outcome)
    if report is None:
        raise SandboxUnavailableError(diagnose(outcome))
    if report.get("uid") != 65534 or report.get("seccomp") != "2":
        raise SandboxUnavailableError(
            f"the processor sandbox started but is not confined as required (uid "
            f"{report.get('uid')}, seccomp mode {report.get('seccomp')!r}, expected 65534 and 2); "
            "check the bubblewrap version (0.8 or newer is needed for --disable-userns)"
        )


def _report(outcome: WorkerOutcome) -> dict[str, object] | None:
    if outcome.payload is None:
        return None
    try:
        report = json.loads(outcome.payload)
    except ValueError:
        return None
    return report if isinstance(report, dict) and report.get("status") == "ok" else None


def diagnose(outcome: WorkerOutcome) -> str:
    """Why a worker that gave no result failed to start, and how to fix it."""
    lines = [line for line in outcome.stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit code {outcome.exit_code}, no output"
    if outcome.timed_out:
        return (
            "the processor sandbox did not start within the wall-clock limit "
            f"({last}); check that the machine is not overloaded"
        )
    if not outcome.started:
        text = outcome.stderr.lower()
        hint = (
            _USERNS_HINT
            if any(w in text for w in ("namespace", "uid map", "permission", "not permitted"))
            else "check that bubblewrap works: bwrap --unshare-all --ro-bind / / true"
        )
        return f"the processor sandbox cannot start: bubblewrap said {last!r}; {hint}"
    if "seccomp" in outcome.stderr:
        return (
            f"the processor sandbox cannot install its seccomp filter ({last}); the kernel needs "
            "CONFIG_SECCOMP_FILTER, and containers must allow the seccomp() call"
        )
    return (
        f"the processor sandbox started but the worker failed ({last}); check that the "
        "virtualenv has RestrictedPython installed and that headwater imports cleanly"
    )

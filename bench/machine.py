"""Facts about the machine and the code measured, for every benchmark's report (stdlib only)."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent


def facts(venvs: dict[str, tuple[str, str]]) -> dict:
    """The machine, the load, the commit measured, and each venv's versions.

    Args:
        venvs: label -> (its python, the packages whose versions to report).
    """
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    found = {
        "date_utc": subprocess.run(
            ["date", "-u", "+%Y-%m-%d %H:%M"], capture_output=True, text=True
        ).stdout.strip(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    found.update({label: versions(python, packages) for label, (python, packages) in venvs.items()})
    found["git"] = git_state()
    return found


def table(machine: dict, venvs: dict[str, str]) -> list[str]:
    """The report's machine table (markdown lines); `venvs`: row label -> fact key."""
    return [
        "| machine | |",
        "|---|---|",
        f"| CPUs (nproc) | {machine['nproc']} x {machine['cpu']} |",
        f"| RAM | {machine['ram_gib']} GiB |",
        f"| kernel | {machine['kernel']} |",
        f"| load average before the run (1/5/15 min) | {machine['loadavg_before']} |",
        *(f"| {label} | {machine[key]} |" for label, key in venvs.items()),
        f"| Headwater commit | {machine['git']} |",
    ]


def versions(python: str, packages: str) -> str:
    code = (
        "import sys, importlib.metadata as m; print('python ' + sys.version.split()[0] + ', ' + "
        f"', '.join(p + ' ' + m.version(p) for p in {packages.split()!r}))"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or f"unavailable ({done.stderr.strip()[-200:]})"


def git_state() -> str:
    """The commit measured, and the uncommitted changes in headwater/ if any, named by a hash of
    their diff so two runs can tell whether they measured the same code (read-only git)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    commit = git("rev-parse", "--short", "HEAD").strip()
    changed = git("status", "--porcelain", "--", "headwater").splitlines()
    if not changed:
        return f"{commit}, no uncommitted changes in headwater/"
    diff = hashlib.sha256(git("diff", "HEAD", "--", "headwater").encode()).hexdigest()[:10]
    return f"{commit} + {len(changed)} uncommitted file(s) in headwater/ (diff sha256 {diff})"

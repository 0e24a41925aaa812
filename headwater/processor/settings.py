"""Limits and policy for processor runs: one frozen spec, read once, passed to every run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from headwater.processor.errors import ProcessorConfigError

# The seed product's allow-list, verbatim and in its order. Listing `a` allows `import a` and
# `from a import b`, not `import a.b`; that needs `a.b` listed (hence passlib.hash, jose.*).
DEFAULT_ALLOWED_IMPORTS: tuple[str, ...] = (
    "string",
    "math",
    "itertools",
    "random",
    "warnings",
    "base64",
    "io",
    "json",
    "xml",
    "ssl",
    "time",
    "datetime",
    "yaml",
    "httpx",
    "pandas",
    "numpy",
    "deepdiff",
    "passlib.hash",
    "jose",
    "jose.backends",
    "jose.constants",
    "jose.utils",
    "openai",
    "matplotlib",
    "matplotlib.pyplot",
)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class ProcessorSettings:
    """How processor statements are allowed to run: imports, network, and resource limits.

    The defaults suit a shared runner: no network, 30 s of wall clock, 20 s of CPU and 1.5 GiB of
    address space (enough for pandas, numpy and matplotlib with single-threaded BLAS).

    Example:
        settings = ProcessorSettings(network=True, timeout_s=60)
    """

    allowed_imports: tuple[str, ...] = DEFAULT_ALLOWED_IMPORTS
    network: bool = False
    timeout_s: float = 30.0  # wall clock from sandbox start; then the parent kills the sandbox
    cpu_s: int = 20  # RLIMIT_CPU soft limit; the hard limit (SIGKILL) is one second later
    memory_mb: int = 1536  # RLIMIT_AS: virtual memory, so it must cover library mappings too
    max_processes: int = 64  # RLIMIT_NPROC, counts threads; seccomp already forbids fork
    max_open_files: int = 128  # RLIMIT_NOFILE, applied after the statement's imports
    tmpfs_mb: int = 64  # the private /tmp, also the cap for a single written file
    max_output_bytes: int = 8 * _MIB  # the result frame (rows, logs, error) as JSON
    max_rows: int = 100_000
    max_statement_bytes: int = 256 * 1024
    bwrap: str = "bwrap"

    def __post_init__(self) -> None:
        imports = self.allowed_imports
        if isinstance(imports, str) or not isinstance(imports, Sequence):
            raise ProcessorConfigError(
                f"allowed_imports must be a sequence of module names, got {imports!r}"
            )
        if any(not isinstance(name, str) or not _is_module_name(name) for name in imports):
            raise ProcessorConfigError(
                f"allowed_imports holds an invalid module name: {imports!r} "
                "(use dotted names such as 'json' or 'passlib.hash')"
            )
        object.__setattr__(self, "allowed_imports", tuple(imports))
        _require_positive("timeout_s", self.timeout_s, whole=False)
        for name in _WHOLE_NUMBERS:
            _require_positive(name, getattr(self, name), whole=True)
        if not self.bwrap:
            raise ProcessorConfigError("bwrap must name the bubblewrap binary, e.g. 'bwrap'")


def _is_module_name(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


_WHOLE_NUMBERS = (
    "cpu_s",
    "memory_mb",
    "max_processes",
    "max_open_files",
    "tmpfs_mb",
    "max_output_bytes",
    "max_rows",
    "max_statement_bytes",
)


def _require_positive(name: str, value: object, *, whole: bool) -> None:
    kind_ok = isinstance(value, int) or (not whole and isinstance(value, float))
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind_ok and number is not None and 0 < number < math.inf:
        return
    expected = "whole number" if whole else "number"
    raise ProcessorConfigError(
        f"ProcessorSettings.{name} must be a positive {expected}, got {value!r}"
    )

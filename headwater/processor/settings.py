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

    `warm_workers` > 0 keeps that many sandboxed workers started ahead of time, each with the
    `preload` modules already imported and waiting for one job (a worker still runs one job
    only). That saves a long-lived process the start-up and import time of each run; a process
    that runs once and exits (the CLI) gains nothing, hence the default 0. With warm workers,
    every `preload` module must be on `allowed_imports`.

    Example:
        settings = ProcessorSettings(network=True, timeout_s=60)
        server = ProcessorSettings(warm_workers=2, preload=("pandas", "numpy"))
    """

    allowed_imports: tuple[str, ...] = DEFAULT_ALLOWED_IMPORTS
    network: bool = False
    timeout_s: float = 30.0  # wall clock from sandbox start (warm: from the job); then a kill
    cpu_s: int = 20  # RLIMIT_CPU soft limit; the hard limit (SIGKILL) is one second later
    memory_mb: int = 1536  # RLIMIT_AS: virtual memory, so it must cover library mappings too
    max_processes: int = 64  # RLIMIT_NPROC, counts threads; seccomp already forbids fork
    max_open_files: int = 128  # RLIMIT_NOFILE, applied after the statement's imports
    tmpfs_mb: int = 64  # the private /tmp, also the cap for a single written file
    max_output_bytes: int = 8 * _MIB  # the result frame (rows, logs, error) as JSON
    max_rows: int = 100_000
    max_statement_bytes: int = 256 * 1024
    bwrap: str = "bwrap"
    warm_workers: int = 0  # sandboxed workers kept started ahead of runs; 0: start one per run
    preload: tuple[str, ...] = ("pandas", "numpy")  # what a warm worker imports while it waits

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
        self._check_warm_workers()

    def _check_warm_workers(self) -> None:
        count = self.warm_workers
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ProcessorConfigError(
                f"ProcessorSettings.warm_workers must be a whole number >= 0 (0 starts a worker "
                f"per run), got {count!r}"
            )
        preload = self.preload
        if isinstance(preload, str) or not isinstance(preload, Sequence):
            raise ProcessorConfigError(
                f"preload must be a sequence of module names such as ('pandas', 'numpy'), "
                f"got {preload!r}"
            )
        if any(not isinstance(name, str) or not _is_module_name(name) for name in preload):
            raise ProcessorConfigError(
                f"preload holds an invalid module name: {preload!r} (use dotted names such as "
                "'pandas' or 'matplotlib.pyplot')"
            )
        object.__setattr__(self, "preload", tuple(preload))
        # A warm worker imports only what a statement could import itself. Cold runs never
        # preload, so the default list does not get in the way of a narrower allow-list.
        refused = [name for name in preload if name not in self.allowed_imports]
        if count and refused:
            raise ProcessorConfigError(
                f"preload names {', '.join(map(repr, refused))}, which allowed_imports does not "
                "list; warm workers preload only allowed modules: add them to allowed_imports "
                "or drop them from preload"
            )


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

"""Processor connectors: sandboxed Python statements that turn input rows into output rows.

A statement is the body of an async function that returns a list of rows; `run_statement` runs
it through four layers: a static gate, a language policy, an OS sandbox (bubblewrap, seccomp,
rlimits) and an output contract checked in the trusted parent. A long-lived process can keep
sandboxed workers started ahead of runs (`ProcessorSettings.warm_workers`); they stop at exit or
when it calls `shutdown_warm_workers()`.

The names below load on first use, so the sandboxed worker, which imports
`headwater.processor.worker`, does not pay for the parent's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.processor.errors import SandboxUnavailableError
    from headwater.processor.result import ProcessorResult
    from headwater.processor.run import run_statement
    from headwater.processor.schema import OutputSchema
    from headwater.processor.settings import DEFAULT_ALLOWED_IMPORTS, ProcessorSettings
    from headwater.processor.warm import shutdown_warm_workers

_HOMES = {
    "DEFAULT_ALLOWED_IMPORTS": "headwater.processor.settings",
    "OutputSchema": "headwater.processor.schema",
    "ProcessorResult": "headwater.processor.result",
    "ProcessorSettings": "headwater.processor.settings",
    "SandboxUnavailableError": "headwater.processor.errors",
    "run_statement": "headwater.processor.run",
    "shutdown_warm_workers": "headwater.processor.warm",
}
__all__ = [
    "DEFAULT_ALLOWED_IMPORTS",
    "OutputSchema",
    "ProcessorResult",
    "ProcessorSettings",
    "SandboxUnavailableError",
    "run_statement",
    "shutdown_warm_workers",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'headwater.processor' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value

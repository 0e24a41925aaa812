"""Headwater: custom Python data connectors, run incrementally, stored as Parquet behind a SQL
catalog.

The names below load on first use, so `import headwater.stream` (or a worker process) does not
pay for the catalog's SQLAlchemy and Alembic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.component import ComponentSettings, RetrySpec
    from headwater.engine.refresh import RunResult
    from headwater.errors import HeadwaterError
    from headwater.settings import Settings
    from headwater.workspace import Workspace

__version__ = "0.1.0"
_HOMES = {
    "ComponentSettings": "headwater.component",
    "RetrySpec": "headwater.component",
    "RunResult": "headwater.engine.refresh",
    "HeadwaterError": "headwater.errors",
    "Settings": "headwater.settings",
    "Workspace": "headwater.workspace",
}
__all__ = [
    "ComponentSettings",
    "HeadwaterError",
    "RetrySpec",
    "RunResult",
    "Settings",
    "Workspace",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'headwater' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value

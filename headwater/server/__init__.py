"""Headwater's server: a FastAPI app over the catalog, the store and a pool of runs.

`create_app(ServerSettings.from_env())` builds it; `headwater server` serves it with uvicorn.
The names below load on first use, so the CLI (which imports `headwater.server.commands`) does
not pay for FastAPI at startup.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.server.app import create_app
    from headwater.server.settings import ServerSettings

_HOMES = {"create_app": "headwater.server.app", "ServerSettings": "headwater.server.settings"}
__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'headwater.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value

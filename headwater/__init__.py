"""Headwater: custom Python data connectors, run incrementally, stored as Parquet behind a SQL
catalog."""

from headwater.component import ComponentSettings, RetrySpec
from headwater.engine.refresh import RunResult
from headwater.errors import HeadwaterError
from headwater.settings import Settings
from headwater.workspace import Workspace

__version__ = "0.1.0"
__all__ = [
    "ComponentSettings",
    "HeadwaterError",
    "RetrySpec",
    "RunResult",
    "Settings",
    "Workspace",
    "__version__",
]

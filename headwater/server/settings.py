"""The server's settings: read once, at startup, and checked there."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.errors import SettingsError
from headwater.settings import Settings
from headwater.signing import DEFAULT_MAX_SKEW
from headwater.vault import ServerKey

if TYPE_CHECKING:
    from headwater.processor import ProcessorSettings

WORKERS_ENV = "HEADWATER_SERVER_WORKERS"
SCHEDULER_ENV = "HEADWATER_SCHEDULER"
SWITCH = {"1": True, "true": True, "on": True, "yes": True,
          "0": False, "false": False, "off": False, "no": False}  # fmt: skip


def _default_processor() -> ProcessorSettings:
    from headwater.processor import ProcessorSettings

    return ProcessorSettings()


@dataclass(frozen=True)
class ServerSettings:
    """What a Headwater server needs: where the catalog and store live, the server key, and
    how many runs it executes at once.

    Args:
        workspace: the catalog and store (`HEADWATER_HOME`, `HEADWATER_CATALOG_URL`,
            `HEADWATER_STORE_URL`).
        server_key: `HEADWATER_SECRET_KEY`: decrypts access keys and credentials.
        workers: runs executed at once (`HEADWATER_SERVER_WORKERS`, default 4); more wait queued.
        max_skew: seconds a signed request's timestamp may be off, either way.
        processor: the sandbox every processor component runs in (imports, network, limits):
            the server's to set, never a component's.
        scheduler: refresh components on their schedules (`HEADWATER_SCHEDULER`, default on;
            `0` turns it off, e.g. on all but one server). Manual refreshes work either way.

    Example:
        >>> settings = ServerSettings.from_env()                       # doctest: +SKIP
        >>> app = create_app(settings)
    """

    workspace: Settings
    server_key: ServerKey
    workers: int = 4
    max_skew: float = DEFAULT_MAX_SKEW
    processor: ProcessorSettings = field(default_factory=_default_processor)
    scheduler: bool = True

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise SettingsError(f"{WORKERS_ENV} must be at least 1, got {self.workers}")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, home: str | Path | None = None
    ) -> ServerSettings:
        """Settings from the environment; a SettingsError naming what is missing or wrong."""
        env = os.environ if environ is None else environ
        workers_text = env.get(WORKERS_ENV, "4")
        try:
            workers = int(workers_text)
        except ValueError:
            raise SettingsError(f"{WORKERS_ENV}={workers_text!r} is not a whole number") from None
        scheduler_text = env.get(SCHEDULER_ENV, "1")
        scheduler = SWITCH.get(scheduler_text.strip().lower())
        if scheduler is None:
            raise SettingsError(
                f"{SCHEDULER_ENV}={scheduler_text!r} is neither on nor off; use 1 or 0"
            )
        return cls(
            workspace=Settings.from_env(env, home=home),
            server_key=ServerKey.from_env(env),
            workers=workers,
            scheduler=scheduler,
        )

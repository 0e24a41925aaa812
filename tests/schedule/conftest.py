"""The real app in-process, as in tests/server (its fixtures, shared), with the scheduler's
thread on; a test parametrizes `scheduler_on` False to drive the scheduler itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.server import ServerSettings
from headwater.settings import Settings
from headwater.vault import ServerKey
from tests.server import conftest as shared


@pytest.fixture
def scheduler_on() -> bool:
    return True


@pytest.fixture
def server_settings(catalog_url: str, tmp_path: Path, scheduler_on: bool) -> ServerSettings:
    workspace = Settings(home=tmp_path, catalog_url=catalog_url, store_url=str(tmp_path / "store"))
    key = ServerKey.from_text(ServerKey.generate())
    return ServerSettings(workspace=workspace, server_key=key, workers=2, scheduler=scheduler_on)


client = shared.client
server = shared.server
signed = shared.signed
flow = shared.flow
api = shared.api

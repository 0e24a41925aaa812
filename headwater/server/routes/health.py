"""Health: the one route that needs no signature (with /docs and /openapi.json)."""

from __future__ import annotations

from fastapi import APIRouter

import headwater
from headwater.client.models import Health

router = APIRouter(tags=["service"])


@router.get("/health")
def health() -> Health:
    """Whether the server is up, and its version."""
    return Health(version=headwater.__version__)

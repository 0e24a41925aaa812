"""Keeping a credential out of messages: every form a connector is likely to use is masked."""

from __future__ import annotations

import json
import urllib.parse

MASK = "***"
MIN_PART = 6  # shorter JSON values ("us", "prod") are too common to mask usefully


def forms(secret: str | None) -> list[str]:
    """The credential as given, stripped, URL-encoded, and each longer string value of it as a
    JSON object (connectors usually json.loads it and send one field); longest first."""
    if not secret:
        return []
    found = {secret, secret.strip()}
    try:
        parsed = json.loads(secret)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        found.update(v for v in parsed.values() if isinstance(v, str) and len(v) >= MIN_PART)
    found.update(urllib.parse.quote(f, safe="") for f in list(found))
    return sorted((f for f in found if f), key=len, reverse=True)


def scrub(text: str, secret: str | None) -> str:
    """`text` with every form of `secret` replaced by ***."""
    for form in forms(secret):
        text = text.replace(form, MASK)
    return text

"""Errors of write connectors (the errors of a custom `write()` are ConnectorErrors)."""

from __future__ import annotations

from headwater.errors import HeadwaterError


class WriteError(HeadwaterError):
    """A write connector's target cannot take its upstream's data: a bad declaration, an
    unreachable or unsuitable target, a column it cannot hold. The message names the
    component, the target and, where one is to blame, the partition and the column."""

"""The processor's own errors: a sandbox that cannot start, and a run configured wrongly.

A statement's failures are not exceptions: they come back as a `ProcessorResult` with the verdict
"failed" or "rejected". These two errors are about the platform or the caller, not the statement.
"""

from __future__ import annotations

from headwater.errors import HeadwaterError


class SandboxUnavailableError(HeadwaterError):
    """The OS sandbox cannot start here, so statements are refused (never run unsandboxed)."""


class ProcessorConfigError(HeadwaterError, ValueError):
    """A run was asked for with unusable arguments: a bad schema, checkpoint column or setting."""

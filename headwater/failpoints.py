"""Named points where a test can kill the process (SIGKILL), to prove crash safety.

`HEADWATER_FAILPOINT=land.after_rename:3` kills the process the third time that point is hit.
Unset (always, outside the crash tests), `hit` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "HEADWATER_FAILPOINT"
_counts: dict[str, int] = {}
_lock = threading.Lock()


def hit(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)

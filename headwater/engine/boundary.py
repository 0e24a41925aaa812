"""The one boundary where connector code's failures become ConnectorErrors.

Everything the engine calls in connector code runs inside `guard`: an exception is wrapped once,
with the component, function, partition and run named, the traceback cut down to the connector's
own frames, and the credential scrubbed from both.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headwater.errors import ConnectorError, HeadwaterError, Where
from headwater.secrets import scrub

_PACKAGE = str(Path(__file__).resolve().parents[1])


def connector_traceback(exc: BaseException) -> str:
    """The traceback of `exc` with Headwater's own frames left out: the author's code only."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_PACKAGE)
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


@contextmanager
def guard(where: Where, secret: str | None = None) -> Iterator[None]:
    """Run connector code; turn whatever it raises into a ConnectorError located at `where`."""
    try:
        yield
    except ConnectorError as exc:
        # Contract errors may quote the connector's data (a CSV row echoing a key): scrub them too.
        raise exc.located(where).scrubbed(secret) from None
    except HeadwaterError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() or CancelledError in a connector: still its error
        message = scrub(f"{type(exc).__name__}: {exc}", secret)
        function = where.function or "connector"
        raise ConnectorError(
            f"raised {message}",
            where,
            hint=f"the error is in {function}() or in the system it calls; "
            "`headwater runs --run ID` shows its traceback",
            retryable=True,
            detail=scrub(connector_traceback(exc), secret),
        ) from None

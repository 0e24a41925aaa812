"""Explain an exception raised by a statement in the statement's own terms.

The message names the exception, the statement line (the user's numbering: the gate keeps it),
the input row in row-by-row mode, and a fix where one is known. The debug traceback keeps only
the statement's frames, so neither the worker's nor the libraries' internals leak into it.

This module is imported by the sandboxed worker only.
"""

from __future__ import annotations

from types import TracebackType

from headwater.processor.gate import ENTRY, FILENAME
from headwater.processor.protocol import MAX_ERROR_CHARS, MAX_TRACEBACK_CHARS


class CpuLimitExceeded(BaseException):
    """Raised from the SIGXCPU handler; a BaseException so `except Exception` lets it through."""


# Builtins a statement does not get; a NameError for one of them gets a hint instead of a riddle.
_UNAVAILABLE = frozenset(
    """
    eval exec compile globals locals vars input breakpoint memoryview help exit quit dir
    """.split()  # noqa: SIM905 - a word list reads better than one name per line
)


def describe_exception(
    exc: BaseException, lines: list[str], *, source: str, cpu_s: int, memory_mb: int
) -> tuple[str, str]:
    """(one-line error message, filtered traceback) for an exception from the statement."""
    frames = _statement_frames(exc.__traceback__)
    at = f" at line {frames[-1][0]}" if frames else ""
    text = _text(exc)
    kind = type(exc).__name__
    if isinstance(exc, CpuLimitExceeded):
        message = (
            f"the statement exceeded the CPU limit of {cpu_s} s{at}{source}; process less data "
            "per run or make the loop cheaper"
        )
    elif isinstance(exc, MemoryError):
        detail = f" ({text})" if text else ""
        message = (
            f"the statement exceeded the memory limit of {memory_mb} MB{at}{source}{detail}; "
            "hold less data at once"
        )
    elif isinstance(exc, SystemExit):
        message = f"SystemExit{at}{source}: a statement cannot exit; return a list of rows instead"
    else:
        message = f"{kind}{at}{source}: {text}{_hint(exc, text)}"
    return _cap(message, MAX_ERROR_CHARS), _cap(_format(frames, lines, exc), MAX_TRACEBACK_CHARS)


def _statement_frames(tb: TracebackType | None) -> list[tuple[int, str]]:
    frames: list[tuple[int, str]] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == FILENAME:
            name = "<statement>" if code.co_name == ENTRY else code.co_name
            frames.append((tb.tb_lineno, name))
        tb = tb.tb_next
    return frames


def _format(frames: list[tuple[int, str]], lines: list[str], exc: BaseException) -> str:
    out = ["Traceback (most recent call last; statement frames only):"]
    for lineno, name in frames:
        out.append(f"  line {lineno}, in {name}")
        if 0 < lineno <= len(lines) and lines[lineno - 1].strip():
            out.append(f"    {lines[lineno - 1].strip()}")
    text = _text(exc)
    out.append(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
    return "\n".join(out)


def _text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a statement-defined __str__ may itself raise
        return "(the exception message could not be shown)"
    return _cap(text, MAX_ERROR_CHARS)


def _hint(exc: BaseException, text: str) -> str:
    if isinstance(exc, NameError):
        name = text.split("'")[1] if text.count("'") >= 2 else ""
        if name in _UNAVAILABLE:
            return f" ({name}() is not available in statements)"
    if isinstance(exc, RecursionError):
        return " (too deep: a function calling itself without end, or deeply nested data)"
    return ""


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... (truncated from {len(text):,} characters)"

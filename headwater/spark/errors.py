"""Spark's errors in one line: what a run's failure says, with the whole text as its detail."""

from __future__ import annotations

_LIMIT = 400


def summary(exc: BaseException) -> str:
    """The line of a Spark error that says what happened.

    A failed job's message is a Java stack trace, one of whose first lines names the lost
    task and, after "most recent failure:", its cause; a Python error inside a task follows as a
    Python traceback, whose last line is the error itself.
    """
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    lost = next((line for line in lines if "most recent failure:" in line), None)
    first = lost.split("most recent failure:", 1)[1].strip() if lost else lines[0]
    python = next((line for line in reversed(lines) if _is_python_error(line)), None)
    if python is not None and python not in first:
        first = f"{first} ... {python}"
    return first if len(first) <= _LIMIT else first[: _LIMIT - 3] + "..."


def _is_python_error(line: str) -> bool:
    name = line.split(":", 1)[0]
    return (name.endswith(("Error", "Exception")) and " " not in name) and "." not in name

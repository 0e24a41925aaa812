"""The terminal side of every command: the consoles, the options all commands share, and the
workspace a command runs in, with Headwater's errors turned into one line and exit code 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.workspace import Workspace

# Piped output (scripts, CI logs) gets wide tables instead of rich's 80-column default.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class State:
    debug: bool = False
    home: Path | None = None


state = State()


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Headwater's errors (and the catalog's, the disk's) as one line on stderr, exit code 1;
    with `--debug`, the traceback instead."""
    try:
        yield
    except Exception as exc:
        if state.debug or not isinstance(exc, _reported_errors()):
            raise
        err.print(f"[red]error:[/red] {escape(_one_line(exc))}", markup=True)
        raise typer.Exit(1) from None


@contextmanager
def workspace() -> Iterator[Workspace]:
    """The workspace a command works in, its errors reported by `one_line_errors`."""
    with one_line_errors():
        from headwater.workspace import Workspace  # SQLAlchemy, pyarrow, DuckDB: 0.5 s

        with Workspace(home=state.home) as ws:
            yield ws


def _reported_errors() -> tuple[type[Exception], ...]:
    # Only the commands that need SQLAlchemy or pyarrow import them (serve-connectors starts
    # without either), and while one is not imported none of its errors can have been raised.
    errors: list[type[Exception]] = [HeadwaterError, OSError, ImportError]
    if sa_exc := sys.modules.get("sqlalchemy.exc"):
        errors.append(sa_exc.SQLAlchemyError)
    if pa_lib := sys.modules.get("pyarrow.lib"):
        errors.append(pa_lib.ArrowException)
    return tuple(errors)


def _one_line(exc: BaseException) -> str:
    """What went wrong, in words, for errors that are not Headwater's own."""
    if isinstance(exc, HeadwaterError):
        return str(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")  # see _reported_errors
    if sa_exc and isinstance(exc, sa_exc.SQLAlchemyError):
        cause = getattr(exc, "orig", None) or exc
        return f"the catalog database cannot be used: {str(cause).strip().splitlines()[0]}"
    if isinstance(exc, ImportError):
        return f"a package Headwater needs here is not installed: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def json_argument(value: str | None, what: str, default: Any, *, kind: type | None = None) -> Any:
    """A JSON value given on the command line: inline, or as @FILE or a file's path.

    `kind` (dict, list) is the type the value must have; errors name the option (`what`)."""
    if value is None:
        return default
    text = value
    path = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or (not value.lstrip().startswith(("{", "[")) and path.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(f"{what}: cannot read {path}: {exc.strerror}") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"{what} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); give "
            "JSON inline, or @FILE"
        ) from None
    if kind is not None and not isinstance(parsed, kind):
        raise typer.BadParameter(
            f"{what} must be a JSON {'object' if kind is dict else 'list'}, "
            f"not {type(parsed).__name__}"
        )
    return parsed

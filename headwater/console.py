"""The terminal side of every command: the consoles, the options all commands share, and the
workspace a command runs in, with Headwater's errors turned into one line and exit code 1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape

from headwater.errors import HeadwaterError
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
    except (HeadwaterError, sa.exc.SQLAlchemyError, OSError, ImportError, pa.ArrowException) as exc:
        if state.debug:
            raise
        err.print(f"[red]error:[/red] {escape(_one_line(exc))}", markup=True)
        raise typer.Exit(1) from None


@contextmanager
def workspace() -> Iterator[Workspace]:
    """The workspace a command works in, its errors reported by `one_line_errors`."""
    with one_line_errors(), Workspace(home=state.home) as ws:
        yield ws


def _one_line(exc: BaseException) -> str:
    """What went wrong, in words, for errors that are not Headwater's own."""
    if isinstance(exc, HeadwaterError):
        return str(exc)
    if isinstance(exc, sa.exc.SQLAlchemyError):
        cause = getattr(exc, "orig", None) or exc
        return f"the catalog database cannot be used: {str(cause).strip().splitlines()[0]}"
    if isinstance(exc, ImportError):
        return f"a package Headwater needs here is not installed: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"

"""Types of the C extension built from _native.c (see native.py)."""

from collections.abc import Callable, Sequence
from typing import Any

from typing_extensions import Buffer

INT: int
FLOAT: int
STR: int
BOOL: int
BYTES: int
INT8: int

class Rows:
    rows: int
    divert: Callable[[dict[str, Any]], None] | None
    def __init__(
        self,
        columns: Sequence[tuple[str, int, bool]],
        chunk_rows: int,
        check: Callable[[dict[str, Any]], list[Any] | None],
        misfit: Callable[[dict[str, Any], str, Any], None],
        full: Callable[[], None],
        first: Callable[[], None],
    ) -> None: ...
    def next(self, **values: Any) -> None: ...
    def add(self, values: dict[str, Any]) -> None: ...
    def push(self, row: list[Any], op: int) -> None: ...
    def take(self, lists: bool) -> tuple[Any, list[Any]]: ...
    def clear(self) -> None: ...

class IntIndex:
    slots: int
    def lookup(self, keys: Buffer) -> bytes: ...
    def set(self, keys: Buffer, positions: Buffer) -> None: ...
    def positions(self) -> bytes: ...
    def remap(self, old_to_new: Buffer) -> None: ...

def csv_lines(rows: int, columns: Sequence[tuple[int, int, Any, Any, Any]]) -> bytes: ...
def repr_float(x: float) -> str: ...

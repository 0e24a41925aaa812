"""Types of the C++ extension built from _front.cc (see front.py)."""

from collections.abc import Sequence
from typing import Literal, TypeAlias, final

from typing_extensions import Buffer

Metadata: TypeAlias = list[tuple[str, str | bytes]]
CallEvent: TypeAlias = tuple[Literal["call"], Call, str, list[bytes], Metadata, float | None]
DoneEvent: TypeAlias = tuple[Literal["done"], Call, bool]
MessageEvent: TypeAlias = tuple[Literal["message"], Call, bytes | None]
DrainedEvent: TypeAlias = tuple[Literal["drained"], Call]

@final
class Call:
    @property
    def peer(self) -> str: ...
    def write(self, data: Buffer, /) -> bool: ...
    def notify_drained(self) -> None: ...
    def finish(
        self,
        code: int,
        details: str,
        trailing_metadata: Sequence[tuple[str, str | bytes]],
        last: Buffer | None = None,
        /,
    ) -> None: ...

@final
class Server:
    def __init__(
        self, address: str, max_message_bytes: int, streaming: Sequence[str] = ()
    ) -> None: ...
    def start(self) -> int: ...
    def fileno(self) -> int: ...
    def events(self) -> list[CallEvent | DoneEvent | MessageEvent | DrainedEvent]: ...
    def shutdown(self, grace: float, /) -> None: ...

"""Errors: one root, connector-code errors kept apart from framework faults.

Every message says what happened, where (component, function, partition, run) and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


class HeadwaterError(Exception):
    """Root of every error Headwater raises on purpose."""


@dataclass(frozen=True)
class Where:
    """The place in connector code an error belongs to."""

    component: str | None = None
    function: str | None = None
    partition: str | None = None
    run_id: int | None = None

    def describe(self) -> str:
        parts = []
        if self.component is not None:
            parts.append(f"component '{self.component}'")
        if self.function is not None:
            parts.append(f"{self.function}()")
        if self.partition is not None:
            parts.append(f"partition '{self.partition}'")
        if self.run_id is not None:
            parts.append(f"run {self.run_id}")
        return ", ".join(parts)

    def at(self, **changes: Any) -> Where:
        return replace(self, **changes)


class ConnectorError(HeadwaterError):
    """Connector code raised, or broke its contract. Names where, and what to do.

    `retryable` is true only for exceptions the connector raised itself (a flaky API, a timeout);
    broken contracts (a wrong return type, unparseable bytes) fail the same way every time.
    `detail` carries the connector's traceback, filtered to its own frames.
    """

    def __init__(
        self,
        message: str,
        where: Where = Where(),
        *,
        hint: str | None = None,
        retryable: bool = False,
        detail: str | None = None,
    ) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        self.retryable = retryable
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        place = self.where.describe()
        return f"{place}: {self.explained}" if place else self.explained

    @property
    def explained(self) -> str:
        """The message and its fix, without the location."""
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message

    def located(self, where: Where) -> ConnectorError:
        """The same error, with the fields of `where` filled in where this one has none."""
        merged = Where(
            component=self.where.component or where.component,
            function=self.where.function or where.function,
            partition=self.where.partition or where.partition,
            run_id=self.where.run_id or where.run_id,
        )
        clone = type(self)(
            self.message, merged, hint=self.hint, retryable=self.retryable, detail=self.detail
        )
        clone.__cause__ = self.__cause__
        return clone

    def scrubbed(self, secret: str | None) -> ConnectorError:
        """The same error with every form of `secret` masked."""
        if not secret:
            return self
        from headwater.secrets import scrub

        def mask(text: str | None) -> str | None:
            return scrub(text, secret) if text else text

        clone = type(self)(
            mask(self.message) or "",
            self.where,
            hint=mask(self.hint),
            retryable=self.retryable,
            detail=mask(self.detail),
        )
        clone.__cause__ = self.__cause__
        return clone

    # Errors cross process boundaries (the process executor), so they must pickle whole.
    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (type(self), self.message, self.where, self.hint, self.retryable, self.detail),
        )


def _rebuild(
    cls: type[ConnectorError],
    message: str,
    where: Where,
    hint: str | None,
    retryable: bool,
    detail: str | None,
) -> ConnectorError:
    return cls(message, where, hint=hint, retryable=retryable, detail=detail)


class ConnectorLoadError(ConnectorError):
    """The connector's definition is unusable: a missing function, a wrong signature."""


class ParseError(ConnectorError):
    """Bytes from `read_bytes` could not be parsed."""


class SchemaError(ConnectorError):
    """A partition's columns conflict with the component's schema or its declared schema."""


class SettingsError(HeadwaterError):
    """A setting is missing or has a value Headwater cannot use."""


class NotFoundError(HeadwaterError):
    """A named resource (a component, a run) does not exist."""


class ComponentBusyError(HeadwaterError):
    """Another runner holds the component's lease: one component, one writer."""


class CatalogError(HeadwaterError):
    """The catalog cannot be used as it is (for example, written by a newer Headwater)."""


class RefreshFailed(HeadwaterError):
    """A refresh ended with failures; raised by `RunResult.raise_for_status()`."""


class StoreError(HeadwaterError):
    """Writing or reading partition files failed (a full disk, a missing bucket)."""

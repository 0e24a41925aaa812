"""PollSpec: how Headwater's own runs poll a job with `get`, and how long they wait for it."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.errors import SettingsError


@dataclass(frozen=True)
class PollSpec:
    """How often a task run asks a job's `get`: a wait that starts at `first_seconds` and grows
    by `factor` after each poll, up to `max_seconds`.

    A slow job is polled rarely, so a third-party API's quota lasts (Flyte polls every job every
    30 s, whatever it is). Set it on a connector class (`poll_spec = PollSpec(...)`) or per task
    (`TaskSpec(poll=...)`, which wins).

    Args:
        first_seconds: the wait after the first poll.
        max_seconds: the longest wait between two polls.
        factor: how much the wait grows after each poll (1 keeps it constant).
        timeout_seconds: how long a run may take, from its start, before its job is cancelled
            (`delete`) and the run fails; None waits for ever.
        max_errors: how many `get` calls in a row may raise before the attempt is given up
            (its job cancelled, and a new attempt started if the retry allows).

    Example:
        >>> PollSpec(first_seconds=2, max_seconds=60).wait(3)
        8.0
    """

    first_seconds: float = 1.0
    max_seconds: float = 30.0
    factor: float = 2.0
    timeout_seconds: float | None = None
    max_errors: int = 5

    def __post_init__(self) -> None:
        if self.first_seconds < 0 or self.max_seconds < self.first_seconds:
            raise SettingsError(
                f"poll waits must satisfy 0 <= first_seconds <= max_seconds, got "
                f"{self.first_seconds} and {self.max_seconds}"
            )
        if self.factor < 1:
            raise SettingsError(f"poll factor must be at least 1, got {self.factor}")
        if self.timeout_seconds is not None and self.timeout_seconds <= 0:
            raise SettingsError(
                f"poll timeout_seconds must be positive (or None for no limit), "
                f"got {self.timeout_seconds}"
            )
        if self.max_errors < 0:
            raise SettingsError(f"poll max_errors cannot be negative, got {self.max_errors}")

    def wait(self, polls: int) -> float:
        """Seconds to wait after the `polls`-th poll of a job (1 for the first)."""
        return float(min(self.max_seconds, self.first_seconds * self.factor ** (polls - 1)))

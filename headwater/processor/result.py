"""The outcome of one processor run, as the caller (engine, CLI, debug view) consumes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["ok", "failed", "rejected"]


@dataclass(frozen=True)
class ProcessorResult:
    """What a statement run produced: the verdict, validated rows, logs and the new checkpoint.

    - `ok`: the statement ran and every row matches the output schema.
    - `failed`: it ran but raised, called `log.error`, hit a limit or broke the contract.
    - `rejected`: it never ran; the static gate refused it (syntax, imports, type hints).

    `rows` is empty unless the verdict is ok, except in debug runs, which show the first rows
    produced even when validation failed. `checkpoint` is the new data checkpoint when the run
    succeeded with at least one row (and a checkpoint column is set), otherwise the one passed in;
    `checkpoint_changed` says the caller should persist it, and is never true for debug runs.

    Example:
        result = run_statement("return [{'id': 1}]", {"id": "int"}, processing="bulk")
        assert result.verdict == "ok" and result.rows == [{"id": 1}]
    """

    verdict: Verdict
    rows: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, str]] = field(default_factory=list)
    dropped_logs: int = 0
    checkpoint: Any = None
    checkpoint_changed: bool = False
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    traceback: str | None = None
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The result as one JSON-serialisable object (the CLI's `--json` output)."""
        return {
            "verdict": self.verdict,
            "rows": self.rows,
            "logs": self.logs,
            "dropped_logs": self.dropped_logs,
            "checkpoint": self.checkpoint,
            "checkpoint_changed": self.checkpoint_changed,
            "error": self.error,
            "problems": self.problems,
            "traceback": self.traceback,
        }

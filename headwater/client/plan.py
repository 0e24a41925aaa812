"""`Plan`: the changes an applier proposes to make on a server, printed like a diff.

    + create sales/daily/orders (partitioned)
    ~ update sales/daily/big (transform)
        - transform.sql: "SELECT * FROM orders"
        + transform.sql: "SELECT * FROM orders WHERE total > 100"
    -/+ replace sales/daily/totals (processor -> transform): its kind changes; its stored ...
    - delete sales/daily/old (transform)
    Plan: 1 to create, 1 to update, 1 to replace, 1 to delete, 4 unchanged.

Changed values are shown as JSON; a changed text of several lines, as a unified diff. Secrets
are never shown. Unchanged resources are counted, and listed only when there is something to
say about them (a credential whose value was not given).
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from headwater.client.errors import ClientError
from headwater.client.models import Model

Action = Literal["create", "update", "replace", "delete", "unchanged"]
Resource = Literal["data service", "credential", "connection", "dataflow", "component"]
ACTIONS: tuple[Action, ...] = ("create", "update", "replace", "delete", "unchanged")
SIGNS: dict[Action, str] = {
    "create": "+",
    "update": "~",
    "replace": "-/+",
    "delete": "-",
    "unchanged": " ",
}
MAX_VALUE = 300  # characters of a changed value shown on one line


class PlanError(ClientError, ValueError):
    """A definition cannot be applied; `errors` lists each problem, prefixed with the path of
    the resource it is about (`sales/daily/orders: ...`). Nothing was changed on the server."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        listed = "\n".join(f"  - {e}" for e in errors)
        super().__init__(
            f"the definition cannot be applied ({len(errors)} error(s); nothing was changed):"
            f"\n{listed}"
        )


class ApplyError(ClientError):
    """The server refused a step of a plan; the steps before it were applied. `step` is the
    change that failed, `done` the number of steps applied."""

    def __init__(self, message: str, step: Change, done: int) -> None:
        super().__init__(message)
        self.step = step
        self.done = done


@dataclass(frozen=True)
class FieldChange:
    """One changed field of a resource, as a dotted path (`transform.sql`), before and after."""

    name: str
    old: Any
    new: Any

    def lines(self) -> list[str]:
        old, new = self.old, self.new
        if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
            diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1)
            return [f"  {self.name}:", *(f"    {line}" for line in list(diff)[2:])]
        return [f"- {self.name}: {_value(self.old)}", f"+ {self.name}: {_value(self.new)}"]


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


@dataclass(frozen=True)
class Change:
    """What happens to one resource: its `path` (`sales`, `sales/wh`, `sales/daily`,
    `sales/daily/orders`), the `action`, and for updates and replacements the changed fields.
    `label` is a component's kind (`partitioned -> transform` for a replacement), or the kind
    of resource."""

    action: Action
    resource: Resource
    path: str
    label: str
    fields: tuple[FieldChange, ...] = ()
    note: str | None = None
    # What is sent to the server: a model, or a credential's secret (never shown).
    desired: Model | None = field(default=None, repr=False, compare=False)
    secret: str | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        head = f"{SIGNS[self.action]} {self.action} {self.path} ({self.label})"
        if self.note:
            head += f": {self.note}"
        return "\n".join([head, *(f"    {line}" for f in self.fields for line in f.lines())])


@dataclass(frozen=True)
class Step:
    """One call to the server: create, update or delete the resource of `change` (a
    replacement is a delete and a later create)."""

    call: Literal["create", "update", "delete"]
    change: Change


@dataclass
class Plan:
    """The changes an applier proposes, one per resource (`changes`, in the order they are
    shown), and the calls that make them in dependency order (`steps`).

    Example:
        >>> plan = DataServiceApplier(client).apply(data_service, dry_run=True)  # doctest: +SKIP
        >>> print(plan)
        + create sales (data service)
        Plan: 1 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.
    """

    changes: list[Change] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def counts(self) -> dict[Action, int]:
        found = Counter(c.action for c in self.changes)
        return {action: found[action] for action in ACTIONS}

    @property
    def changed(self) -> bool:
        """Whether applying the plan changes anything on the server."""
        return bool(self.steps)

    def __str__(self) -> str:
        shown = [str(c) for c in self.changes if c.action != "unchanged" or c.note]
        if not self.changed:
            shown.append("No changes: the server matches the definition.")
        n = self.counts
        shown.append(
            f"Plan: {n['create']} to create, {n['update']} to update, {n['replace']} to replace, "
            f"{n['delete']} to delete, {n['unchanged']} unchanged."
        )
        return "\n".join(shown)


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (lists stay whole, empty objects are left out): what a
    diff shows field by field."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            flat.update(flatten(item, f"{name}."))
        else:
            flat[name] = item
    return flat


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    """The fields that differ between two JSON objects, for showing (none when they are
    equal). Nested fields are shown by dotted path; if a dotted key of a settings object makes
    that ambiguous, whole top-level fields are shown instead."""
    if old == new:
        return ()
    before, after = flatten(old), flatten(new)
    names = list(after) + [n for n in before if n not in after]
    found = tuple(
        FieldChange(n, before.get(n), after.get(n)) for n in names if before.get(n) != after.get(n)
    )
    if found:
        return found
    names = list(new) + [n for n in old if n not in new]
    return tuple(FieldChange(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n))

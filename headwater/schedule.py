"""When a schedule fires: pure time logic, UTC instants in and out (the server's scheduler
thread, `headwater.server.scheduler`, acts on it).

Intervals. `interval_seconds: n` fires at every instant `k * n` seconds after the Unix epoch
(1970-01-01 00:00 UTC). The grid depends on nothing but `n`, so every server sharing a catalog
computes the same instants and a restart does not shift them; an hourly schedule fires on the
hour, a daily one at 00:00 UTC (use `cron` for a local time of day).

Cron. A five-field expression (minute hour day-of-month month day-of-week, or an alias such as
`@daily`) is matched against the wall clock of `timezone`, the way cron daemons treat
daylight saving time:
- a local time the clocks skip (spring forward; 02:30 in Paris on the last Sunday of March)
  fires once, at the first instant after the jump (03:00 local);
- a local time the clocks repeat (fall back) fires once, the first time round, when the
  expression names its hours (`30 2 * * *`); an hour field of `*` or `*/n` means "every (n)
  hours", so the repeated hour is an hour like any other and fires again.
croniter only matches fields, on naive local times; this module maps those onto instants.
Offset changes of up to `MAX_SHIFT` (3 hours; real DST is at most 2) are handled.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from typing import Any

import pydantic
from croniter import CroniterError, croniter

from headwater.client import models
from headwater.errors import SettingsError

UTC = datetime.UTC
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
MAX_SHIFT = datetime.timedelta(hours=3)
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(SettingsError):
    """A schedule that cannot be used: an invalid cron expression or time zone (answer 422)."""


def next_fire(
    schedule: models.Schedule | dict[str, Any],
    after: datetime.datetime,
    *,
    component: str | None = None,
) -> datetime.datetime:
    """The first instant strictly after `after` at which `schedule` fires (see the module
    docstring for the interval grid and daylight saving time).

    Args:
        schedule: a Schedule, or its stored form (a dict).
        after: a timezone-aware instant.
        component: named in errors.

    Returns:
        An aware UTC datetime.

    Raises:
        ScheduleError: the schedule is invalid (see `check`).

    Example:
        >>> start = datetime.datetime(2024, 3, 30, 12, tzinfo=datetime.UTC)
        >>> next_fire({"cron": "30 2 * * *", "timezone": "Europe/Paris"}, start).isoformat()
        '2024-03-31T01:00:00+00:00'
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"next_fire needs a timezone-aware instant, got {after!r}")
    after = after.astimezone(UTC)
    checked = check(schedule, component=component)
    if checked.interval_seconds is not None:
        step = datetime.timedelta(seconds=checked.interval_seconds)
        return EPOCH + ((after - EPOCH) // step + 1) * step
    assert checked.cron is not None  # (a Schedule holds exactly one of interval and cron)
    zone = zoneinfo.ZoneInfo(checked.timezone)
    return _next_cron(_fields(checked.cron), zone, after)


def check(
    schedule: models.Schedule | dict[str, Any], *, component: str | None = None
) -> models.Schedule:
    """The schedule, validated: a known time zone, and a five-field cron expression that
    fires (a ScheduleError naming `component` otherwise)."""
    try:
        checked = (
            schedule
            if isinstance(schedule, models.Schedule)
            else models.Schedule.model_validate(schedule)
        )
    except pydantic.ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        raise ScheduleError(f"{_whose(component)} is invalid: {problems}") from None
    if checked.cron is not None:
        fields = _fields(checked.cron)
        if len(fields) != 5 or _random(fields) or not croniter.is_valid(" ".join(fields)):
            raise ScheduleError(
                f"{_whose(component)} has an invalid cron expression {checked.cron!r}: write "
                "five fields, minute hour day-of-month month day-of-week (e.g. "
                "'0 6 * * mon-fri'), or an alias such as '@daily'"
            )
        try:  # croniter searches some years ahead, then gives up
            croniter(" ".join(fields), EPOCH).get_next(datetime.datetime)
        except CroniterError as exc:
            raise ScheduleError(
                f"{_whose(component)} has cron expression {checked.cron!r}, which never "
                f"fires ({exc}); check its day-of-month and month fields"
            ) from None
    return checked


def _whose(component: str | None) -> str:
    return f"the schedule of component '{component}'" if component else "the schedule"


def _problem(where: tuple[int | str, ...], message: str) -> str:
    field = ".".join(map(str, where)) or "schedule"
    return f"{field}: {message.removeprefix('Value error, ')}"


def _fields(cron: str) -> list[str]:
    return ALIASES.get(cron.strip().lower(), cron).split()


def _random(fields: list[str]) -> bool:
    """croniter's `H` (hashed) and `R` (random) values: each server would pick its own."""
    values = (v.upper() for field in fields for v in re.split(r"[,/-]", field))
    return any(v in ("H", "R") or v.startswith(("H(", "R(")) for v in values)


def _next_cron(
    fields: list[str], zone: datetime.tzinfo, after: datetime.datetime
) -> datetime.datetime:
    """Walk the expression's naive local times upwards, mapping each onto its instant(s).

    The first-time-round instant of a local time grows with the local time, so the first one
    after `after` is the answer, unless a second time round (in a repeated hour, for an
    every-hour expression) comes earlier: those lie before every instant of a later local time,
    and belong to local times up to one repeated hour (< MAX_SHIFT) before `after`'s.
    """
    every_hour = fields[1].startswith("*")
    local = after.astimezone(zone).replace(tzinfo=None)
    start = local - MAX_SHIFT if every_hour else local
    times = croniter(" ".join(fields), start)
    repeats: list[datetime.datetime] = []
    while True:
        naive = times.get_next(datetime.datetime)
        first, again = _instants(naive, zone)
        if again is not None and every_hour and again > after:
            repeats.append(again)
        if first > after:
            return min([first, *repeats])


def _instants(
    naive: datetime.datetime, zone: datetime.tzinfo
) -> tuple[datetime.datetime, datetime.datetime | None]:
    """When a local time happens: once; twice (fall back: the first and the repeat); or never
    (spring forward), which fires at the first instant after the jump."""
    early = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early == late:
        return early, None
    if early < late:
        return early, late
    # Skipped: fold=0 reads it with the offset before the jump, fold=1 with the one after, so
    # the jump lies after `late`, at or before `early`; find it to the second.
    offset = early.astimezone(zone).utcoffset()
    before, jump = int(late.timestamp()), int(early.timestamp())
    while jump - before > 1:
        middle = (before + jump) // 2
        if datetime.datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == offset:
            jump = middle
        else:
            before = middle
    return datetime.datetime.fromtimestamp(jump, UTC), None

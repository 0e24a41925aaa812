"""When a schedule fires (`headwater.schedule.next_fire`), as scenario tables: intervals on the
Unix epoch grid; cron in a time zone, across daylight saving time in Paris and New York; and,
around each change of the clocks, every fire of a few expressions checked against a
minute-by-minute walk of the wall clock that states the rules directly."""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

import pytest
from croniter import croniter

from headwater.client.models import Schedule
from headwater.errors import SettingsError
from headwater.schedule import EPOCH, ScheduleError, check, next_fire

UTC = datetime.UTC
MINUTE = datetime.timedelta(minutes=1)
PARIS, NEW_YORK = "Europe/Paris", "America/New_York"


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("seconds", "after", "expected"),
    [
        (60, "2024-05-01T10:00:30Z", "2024-05-01T10:01:00Z"),
        (60, "2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"),  # strictly after
        (1, "2024-05-01T10:00:00.5Z", "2024-05-01T10:00:01Z"),
        (3600, "2024-05-01T10:59:59.999999Z", "2024-05-01T11:00:00Z"),  # on the hour
        (86_400, "2024-05-01T10:00:00Z", "2024-05-02T00:00:00Z"),  # at 00:00 UTC
        (7, "1970-01-01T00:01:40Z", "1970-01-01T00:01:45Z"),  # 105 = 15 * 7
        (90, "2024-05-01T12:00:10+02:00", "2024-05-01T10:01:30Z"),  # any offset in, UTC out
    ],
)
def test_an_interval_fires_on_the_epoch_grid(seconds: int, after: str, expected: str) -> None:
    fired = next_fire({"interval_seconds": seconds}, at(after))
    assert fired == at(expected) and fired.tzinfo is UTC


def test_the_interval_grid_does_not_move_with_the_time_it_is_computed_from() -> None:
    """Servers (or a restarted one) computing from different instants fire at the same ones."""
    schedule = Schedule(interval_seconds=7 * 3600 + 13)  # divides no day
    step = datetime.timedelta(seconds=schedule.interval_seconds or 0)
    after = at("2024-05-01T10:00:00Z")
    fires = [after]
    for _ in range(5):
        fires.append(next_fire(schedule, fires[-1]))
    for fired in fires[1:]:
        assert (fired - EPOCH) % step == datetime.timedelta(0)
    for later in (after + datetime.timedelta(seconds=s) for s in (1, 999, 3 * 3600, 30_000)):
        assert next_fire(schedule, later) in fires


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # Paris springs forward on 2024-03-31 at 02:00 (CET, +01) to 03:00 (CEST, +02)
        ("30 2 * * *", PARIS, "2024-03-30T12:00Z", "2024-03-31T01:00Z"),  # skipped: at 03:00
        ("30 2 * * *", PARIS, "2024-03-31T01:00Z", "2024-04-01T00:30Z"),  # then 02:30 again
        ("0 3 * * *", PARIS, "2024-03-30T12:00Z", "2024-03-31T01:00Z"),
        ("*/30 * * * *", PARIS, "2024-03-31T00:30Z", "2024-03-31T01:00Z"),  # 02:00, 02:30: once
        ("*/30 * * * *", PARIS, "2024-03-31T01:00Z", "2024-03-31T01:30Z"),
        # ... and falls back on 2024-10-27 at 03:00 (CEST) to 02:00 (CET)
        ("30 2 * * *", PARIS, "2024-10-26T12:00Z", "2024-10-27T00:30Z"),  # the first 02:30
        ("30 2 * * *", PARIS, "2024-10-27T00:30Z", "2024-10-28T01:30Z"),  # not the second
        ("30 2 * * *", PARIS, "2024-10-27T01:15Z", "2024-10-28T01:30Z"),  # (from within it)
        ("0 * * * *", PARIS, "2024-10-27T00:00Z", "2024-10-27T01:00Z"),  # hourly: both 02:00
        ("@hourly", PARIS, "2024-10-27T00:00Z", "2024-10-27T01:00Z"),
        ("0 * * * *", PARIS, "2024-10-27T01:00Z", "2024-10-27T02:00Z"),
        ("0 6 * * *", PARIS, "2024-01-15T00:00Z", "2024-01-15T05:00Z"),  # winter
        ("0 6 * * *", PARIS, "2024-07-15T00:00Z", "2024-07-15T04:00Z"),  # summer
        # New York springs forward on 2024-03-10 at 02:00 (EST, -05) to 03:00 (EDT, -04)
        ("30 2 * * *", NEW_YORK, "2024-03-09T12:00Z", "2024-03-10T07:00Z"),
        ("30 2 * * *", NEW_YORK, "2024-03-10T07:00Z", "2024-03-11T06:30Z"),
        # ... and falls back on 2024-11-03 at 02:00 (EDT) to 01:00 (EST)
        ("30 1 * * *", NEW_YORK, "2024-11-02T12:00Z", "2024-11-03T05:30Z"),
        ("30 1 * * *", NEW_YORK, "2024-11-03T05:30Z", "2024-11-04T06:30Z"),
        ("*/20 * * * *", NEW_YORK, "2024-11-03T05:45Z", "2024-11-03T06:00Z"),  # 01:00 again
        # weekdays
        ("0 6 * * mon-fri", PARIS, "2024-05-30T03:00Z", "2024-05-30T04:00Z"),  # Thu -> Thu
        ("0 6 * * mon-fri", PARIS, "2024-05-31T05:00Z", "2024-06-03T04:00Z"),  # Fri -> Mon
        ("0 6 * * 1-5", NEW_YORK, "2024-11-01T12:00Z", "2024-11-04T11:00Z"),  # over fall-back
        ("0 0 * * sun", "UTC", "2024-05-01T00:00Z", "2024-05-05T00:00Z"),
        ("0 0 * * 7", "UTC", "2024-05-01T00:00Z", "2024-05-05T00:00Z"),  # 7 is Sunday too
        ("@daily", "UTC", "2024-05-01T00:00Z", "2024-05-02T00:00Z"),
        ("0 0 29 2 *", "UTC", "2024-03-01T00:00Z", "2028-02-29T00:00Z"),
        # Lord Howe moves its clocks by half an hour (02:00 -> 02:30, +10:30 -> +11)
        ("0 * * * *", "Australia/Lord_Howe", "2024-10-05T14:45Z", "2024-10-05T15:30Z"),
    ],
)
def test_a_cron_expression_fires_by_the_wall_clock_of_its_time_zone(
    cron: str, zone: str, after: str, expected: str
) -> None:
    fired = next_fire({"cron": cron, "timezone": zone}, at(after))
    assert fired == at(expected) and fired.tzinfo is UTC


def fires_by_the_minute(
    cron: str, zone: zoneinfo.ZoneInfo, start: datetime.datetime, end: datetime.datetime
) -> list[datetime.datetime]:
    """The rules, stated directly: walk the minutes and look at the wall clock. A minute fires
    when the wall clock matches, except the second time round a repeated hour for an
    expression that names its hours; or when the clocks just jumped over a time that matches."""
    every_hour = cron.split()[1].startswith("*")
    fired = []
    instant = start + MINUTE
    while instant < end:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        before = (instant - MINUTE).astimezone(zone).replace(tzinfo=None)
        jumped = [before + MINUTE * n for n in range(1, (wall - before) // MINUTE)]
        repeat = local.fold == 1 and not every_hour
        if (croniter.match(cron, wall) and not repeat) or any(
            croniter.match(cron, w) for w in jumped
        ):
            fired.append(instant)
        instant += MINUTE
    return fired


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        (PARIS, "2024-03-31T01:00Z"),
        (PARIS, "2024-10-27T01:00Z"),
        (NEW_YORK, "2024-03-10T07:00Z"),
        (NEW_YORK, "2024-11-03T06:00Z"),
    ],
)
@pytest.mark.parametrize(
    "cron", ["30 2 * * *", "*/20 * * * *", "0 * * * *", "15,45 1-3 * * *", "0 */2 * * *"]
)
def test_every_fire_around_a_change_of_the_clocks_follows_the_wall_clock(
    cron: str, zone: str, change: str
) -> None:
    start = at(change) - datetime.timedelta(hours=3)
    end = at(change) + datetime.timedelta(hours=3)
    fired, after = [], start
    while (after := next_fire({"cron": cron, "timezone": zone}, after)) < end:
        fired.append(after)
    assert fired == fires_by_the_minute(cron, zoneinfo.ZoneInfo(zone), start, end)
    assert fired  # (every window holds some fires)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "61 * * * *"}, "has an invalid cron expression '61 * * * *': write five"),
        ({"cron": "every day"}, "has an invalid cron expression 'every day'"),
        ({"cron": "0 0 6 * * *"}, "invalid cron expression '0 0 6 * * *'"),  # six fields
        ({"cron": "R * * * *"}, "invalid cron expression 'R * * * *'"),  # random per server
        ({"cron": "0 H(0-5) * * *"}, "invalid cron expression"),  # hashed: needs an id
        ({"cron": "0 0 30 2 *"}, "has cron expression '0 0 30 2 *', which never fires"),
        ({"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"interval_seconds": 0}, "interval_seconds: Input should be greater than or equal"),
        ({"interval_seconds": 60, "cron": "* * * * *"}, "exactly one of interval_seconds or"),
    ],
)
def test_an_unusable_schedule_is_refused_naming_the_component(
    schedule: dict[str, Any], message: str
) -> None:
    after = at("2024-05-01T00:00Z")
    with pytest.raises(ScheduleError, match=r"^the schedule of component 'orders' ") as caught:
        next_fire(schedule, after, component="orders")
    assert message in str(caught.value)
    assert isinstance(caught.value, SettingsError)  # the server answers 422
    with pytest.raises(ScheduleError, match=r"^the schedule (is|has) "):
        check(schedule)


def test_month_and_weekday_names_are_not_mistaken_for_croniter_extensions() -> None:
    for cron in ("0 6 * mar,apr thu,fri", "0 6 * * thu-sat", "0 0 L * *", "0 0 * * 5#2"):
        assert check({"cron": cron}).cron == cron


def test_the_instant_given_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire({"interval_seconds": 60}, datetime.datetime(2024, 5, 1))

"""Five-field cron expressions (minute hour day-of-month month day-of-week), read here rather
than by Temporal, so a bad one is refused when the journey is validated (a 422 naming
``$.trigger.schedule.cron``) instead of when its schedule is created, and so the simulator and
the schedule agree on every fire (``api/services/schedules.py`` turns a ``Cron`` into calendar
specs).

Classic (Vixie) semantics: lists (``1,15``), ranges (``1-5``), steps (``*/15``, ``10-50/20``),
month and weekday names (``JAN``, ``MON``; any case), 0 or 7 for Sunday; when both the day of
the month and the day of the week are restricted (neither starts with ``*``), a day matching
either one fires.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {name: n + 1 for n, name in enumerate(_MONTHS)}),
    # 7 is Sunday too, folded onto 0 below.
    _Field("day of week", 0, 7, {name: n for n, name in enumerate(_DAYS)}),
)
_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]+))?$")


class CronError(ValueError):
    """What is wrong with an expression, in words for a 422."""


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the values each field allows (days of week 0-6, Sunday 0)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def fires_between(self, zone: str, after: datetime, until: datetime) -> Iterator[datetime]:
        """The fires (UTC) in ``(after, until]`` at local times of ``zone``: for a simulation,
        which has no scheduler. A local time that a clock change skips does not fire."""
        tz = ZoneInfo(zone)
        day = after.astimezone(tz).date() - timedelta(days=1)
        last = until.astimezone(tz).date() + timedelta(days=1)
        while day <= last:
            if self.matches_day(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        local = datetime.combine(day, time(hour, minute), tz)
                        moment = local.astimezone(UTC)
                        if moment.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
                            continue  # in a spring-forward gap
                        if after < moment <= until:
                            yield moment
            day += timedelta(days=1)


def _value(text: str, field: _Field) -> int:
    if text in field.names:
        return field.names[text]
    if not text.isdigit():
        raise CronError(f"{field.name}: {text!r} is not a number or a name")
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name}: {value} is out of range ({field.low}-{field.high})")
    return value


def _field(text: str, field: _Field) -> tuple[set[int], bool]:
    """The values of one field, and whether it is restricted (does not start with ``*``)."""
    values: set[int] = set()
    for item in text.lower().split(","):
        match = _ITEM.match(item)
        if match is None:
            raise CronError(f"{field.name}: {item!r} is not a value, a range or a step")
        span, step_text = match.groups()
        step = int(step_text) if step_text is not None else 1
        if step < 1:
            raise CronError(f"{field.name}: a step is at least 1")
        if span == "*":
            low, high = field.low, field.high
        elif "-" in span:
            first, second = span.split("-")
            low, high = _value(first, field), _value(second, field)
            if low > high:
                raise CronError(f"{field.name}: range {span} goes backwards")
        else:
            low = _value(span, field)
            # `N/S` is N, N+S, ... to the end of the field, as in Vixie cron.
            high = field.high if step_text is not None else low
        values.update(range(low, high + 1, step))
    return values, not text.startswith("*")


def parse_cron(expression: str) -> Cron:
    parts = expression.split()
    if len(parts) != 5:
        raise CronError(
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"e.g. `0 9 * * MON`; this one has {len(parts)}"
        )
    found = [_field(text, field) for text, field in zip(parts, _FIELDS, strict=True)]
    (minutes, _), (hours, _), (days, by_day), (months, _), (weekdays, by_weekday) = found
    weekdays = {0 if d == 7 else d for d in weekdays}
    return Cron(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=tuple(sorted(days)),
        months=tuple(sorted(months)),
        weekdays=tuple(sorted(weekdays)),
        days_restricted=by_day,
        weekdays_restricted=by_weekday,
    )

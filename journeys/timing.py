"""Local wall-clock arithmetic in a contact's IANA time zone; pure, for workflow code.

Callers pass aware UTC datetimes and a zone name; an unknown zone name falls back to UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time. A time that DST skips (02:30 on the spring
    change) lands as far past the gap as it was into it (03:30); a repeated one takes the first."""
    return datetime.combine(day, at, tz).astimezone(UTC)


def next_local_time(
    now: datetime, tz: str, at: time, weekdays: Sequence[str] | None = None
) -> datetime:
    zone_info = zone(tz)
    today = now.astimezone(zone_info).date()
    for offset in range(8):
        day = today + timedelta(days=offset)
        if weekdays and DAYS[day.weekday()] not in weekdays:
            continue
        moment = _instant(day, at, zone_info)
        if moment >= now:
            return moment
    raise ValueError("no matching weekday")  # unreachable with a non-empty weekday list


def quiet_until(now: datetime, tz: str, start: time, end: time) -> datetime | None:
    if start == end:
        return None
    local = now.astimezone(zone(tz)).time().replace(tzinfo=None)
    inside = start <= local < end if start < end else (local >= start or local < end)
    return next_local_time(now, tz, end) if inside else None


def _parse_date(value: str | date) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _anniversary(born: date, year: int) -> date:
    try:
        return born.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def next_date_occurrence(
    now: datetime,
    tz: str,
    value: str | date,
    offset: timedelta,
    at: time,
    yearly: bool,
) -> datetime | None:
    born = _parse_date(value)
    if born is None:
        return None
    zone_info = zone(tz)
    if not yearly:
        return _instant(born + offset, at, zone_info)
    year = now.astimezone(zone_info).year - 1
    for candidate in range(year, year + 4):  # offsets can move the date across a year end
        moment = _instant(_anniversary(born, candidate) + offset, at, zone_info)
        if moment >= now:
            return moment
    return None

"""Local wall-clock arithmetic in a contact's IANA time zone; pure, for workflow code.

Callers pass aware datetimes (``workflow.now()`` is UTC) and a zone name such as
``Europe/Berlin``; every result is an aware UTC datetime. Rules shared by all functions:

- An unknown, empty or malformed zone name (``Mars/Olympus``, ``America``, ``None``) falls back
  to UTC rather than failing: a contact's bad ``timezone`` trait must not wedge a run.
- A naive ``now`` is taken to be UTC.
- A local time that does not exist (skipped by a daylight-saving change, e.g. 02:30 in Berlin on
  the last Sunday of March) moves forward to the first valid instant after the gap (03:00).
- A local time that occurs twice (the autumn change) means its first occurrence (``fold=0``).

Nothing here reads the clock: ``now`` is always passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UTC_ZONE = ZoneInfo("UTC")
# An offset is at most 366 days (spec.MAX_OFFSET), so the anniversary that lands at or after
# ``now`` is always among these years around the current one.
_YEARS_AROUND = range(-2, 4)


def zone(name: str | None) -> ZoneInfo:
    """The zone called ``name``, or UTC when there is no such zone."""
    if not name or not isinstance(name, str):
        return _UTC_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: malformed keys ("../x"); OSError: a directory of zones ("America").
        return _UTC_ZONE


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _exists(moment: datetime) -> bool:
    """Whether an aware local wall-clock time survives a round trip through UTC."""
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None, fold=0) == moment.replace(tzinfo=None, fold=0)


def _after_gap(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant after the daylight-saving gap that swallowed the naive ``wall``."""
    # Read with the offset before the change, ``wall`` lands after the change; read with the
    # offset after it, before. The change itself lies in between: find its first second.
    late = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    early = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if early > late:
        early, late = late, early
    offset_before = early.astimezone(tz).utcoffset()
    low, high = 0, int((late - early).total_seconds())
    while low < high:  # smallest step whose offset differs from the one before the gap
        middle = (low + high) // 2
        if (early + timedelta(seconds=middle)).astimezone(tz).utcoffset() == offset_before:
            low = middle + 1
        else:
            high = middle
    return early + timedelta(seconds=low)


def _instants(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """Every UTC instant showing the naive local time ``wall``, earliest first: one normally,
    two in a repeated hour, and for a skipped time the first instant after the gap."""
    first = wall.replace(tzinfo=tz, fold=0)
    if not _exists(first):
        return [_after_gap(wall, tz)]
    second = wall.replace(tzinfo=tz, fold=1)
    found = {first.astimezone(UTC), second.astimezone(UTC)}
    return sorted(found)


def local_instant(wall: datetime, tz: str | ZoneInfo) -> datetime:
    """The UTC instant of a naive local wall-clock time, by the gap and fold rules above."""
    zone_info = tz if isinstance(tz, ZoneInfo) else zone(tz)
    return _instants(wall.replace(tzinfo=None), zone_info)[0]


def _day_filter(weekdays: Sequence[str] | None) -> set[int] | None:
    if not weekdays:  # None or empty: any day
        return None
    unknown = [day for day in weekdays if day not in DAYS]
    if unknown:
        raise ValueError(f"unknown weekday(s) {unknown}; use {', '.join(DAYS)}")
    return {DAYS.index(day) for day in weekdays}


def next_local_time(
    now: datetime, tz: str, at: time, weekdays: Sequence[str] | None = None
) -> datetime:
    """The first instant at or after ``now`` whose local time in ``tz`` is ``at``, on one of
    ``weekdays`` (``"mon"`` .. ``"sun"``; ``None`` or empty means any day). ``now`` itself when
    it is exactly that time."""
    now = _utc(now)
    zone_info = zone(tz)
    days = _day_filter(weekdays)
    today = now.astimezone(zone_info).date()
    wall_time = at.replace(tzinfo=None)
    for offset in range(8):  # today, and a full week on: every weekday comes round once
        day = today + timedelta(days=offset)
        if days is not None and day.weekday() not in days:
            continue
        moment = local_instant(datetime.combine(day, wall_time), zone_info)
        if moment >= now:
            return moment
    raise AssertionError("unreachable: eight days cover every weekday")  # pragma: no cover


def quiet_until(now: datetime, tz: str, start: time, end: time) -> datetime | None:
    """When ``now`` falls in the local quiet window ``[start, end)``, the UTC instant it ends
    (the next local ``end``); otherwise None. The window may cross midnight (21:00 to 08:00);
    ``start == end`` means no quiet hours."""
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    if start == end:
        return None
    now = _utc(now)
    zone_info = zone(tz)
    local = now.astimezone(zone_info)
    clock = local.time().replace(tzinfo=None, fold=0)
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    # The window ends the next time the wall clock shows ``end``: today or tomorrow. Both
    # occurrences of a repeated hour count here, or the second would hold a send for a day.
    candidates = [
        moment
        for offset in (0, 1)
        for moment in _instants(
            datetime.combine(local.date() + timedelta(days=offset), end), zone_info
        )
        if moment > now
    ]
    return min(candidates) if candidates else next_local_time(now, tz, end)


def _parse_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).date()  # its own date, not converted to any zone
    except ValueError:
        pass
    try:
        return date.fromisoformat(text[:10])
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
    """The instant of a date held in a contact attribute, shifted by ``offset``, at local
    ``at``: local ``date at at`` plus ``offset`` (wall-clock arithmetic, so ``-P1D`` is the day
    before at the same local time). ``value`` is an ISO date or datetime (only its date part
    counts) or a ``date``; anything unreadable or missing gives None.

    ``yearly``: the first anniversary whose target is at or after ``now`` (29 February falls on
    28 February in common years). Otherwise the date itself, even when it is past: the caller
    treats a past target as nothing to wait for.
    """
    base = _parse_date(value)
    if base is None:
        return None
    now = _utc(now)
    zone_info = zone(tz)
    wall_time = at.replace(tzinfo=None)

    def target(day: date) -> datetime:
        return local_instant(datetime.combine(day, wall_time) + offset, zone_info)

    if not yearly:
        try:
            return target(base)
        except OverflowError:
            return None
    year = now.astimezone(zone_info).year
    for candidate in (year + shift for shift in _YEARS_AROUND):
        try:
            moment = target(_anniversary(base, candidate))
        except (OverflowError, ValueError):  # beyond year 1 or 9999
            continue
        if moment >= now:
            return moment
    return None


# --- date-based entry: which occurrences of a date fall in a window --------------------------

# A wall-clock time is at most 14 hours ahead of UTC (Kiribati) and 12 behind (Baker Island),
# and a daylight-saving gap moves it forward by at most an hour or two: a day either side of a
# window in UTC holds every local time that can land inside it.
_ZONE_SLACK = timedelta(days=1)
MAX_ENTRY_WINDOW = timedelta(days=31)


def _window_days(after: datetime, until: datetime, at: time, offset: timedelta) -> list[date]:
    """The dates D whose local moment ``D at + offset`` may fall in ``(after, until]`` in some
    zone: the window widened by ``_ZONE_SLACK`` each side, then moved back by ``at + offset``."""
    after, until = _utc(after), _utc(until)
    if not after < until:
        return []
    if until - after > MAX_ENTRY_WINDOW:
        raise ValueError(f"an entry window spans at most {MAX_ENTRY_WINDOW.days} days")
    shift = timedelta(hours=at.hour, minutes=at.minute) + offset
    first = (after.replace(tzinfo=None) - _ZONE_SLACK - shift).date()
    last = (until.replace(tzinfo=None) + _ZONE_SLACK - shift).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def date_keys_between(
    after: datetime, until: datetime, at: time, offset: timedelta, yearly: bool
) -> list[str]:
    """What the stored date must begin with (``YYYY-MM-DD``) or hold at characters 6 to 10
    (``MM-DD``, ``yearly``) for one of its occurrences to be due in ``(after, until]`` in
    some zone: the set the database narrows contacts by before ``date_occurrences_between``
    decides exactly. 29 February is among the yearly keys when 28 February of a common year
    is, since it is celebrated then."""
    days = _window_days(after, until, at, offset)
    if not yearly:
        return sorted({day.isoformat() for day in days})
    keys = {day.isoformat()[5:] for day in days}
    if any(day.month == 2 and day.day == 28 and not _leap(day.year) for day in days):
        keys.add("02-29")
    return sorted(keys)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def date_occurrences_between(
    value: object,
    tz: str | None,
    at: time,
    offset: timedelta,
    yearly: bool,
    after: datetime,
    until: datetime,
) -> list[tuple[date, datetime]]:
    """Each occurrence of the date held in ``value`` whose moment lies in ``(after, until]``,
    as (occurrence, UTC instant). The moment of occurrence ``D`` is local ``D at at`` plus
    ``offset`` in ``tz`` (wall-clock arithmetic, gap and fold rules above). Without
    ``yearly`` the only occurrence is the date itself; with it, every anniversary from the
    date on (the date itself included; 29 February falls on 28 February in common years).
    Unreadable or missing values have none."""
    base = _parse_date(value)
    if base is None:
        return []
    days = _window_days(after, until, at, offset)
    if not days:
        return []
    after, until = _utc(after), _utc(until)
    zone_info = zone(tz)
    wall_time = at.replace(tzinfo=None)
    if yearly:
        candidates = {_anniversary(base, year) for year in range(days[0].year, days[-1].year + 1)}
        candidates = {day for day in candidates if day >= base}
    else:
        candidates = {base}
    found = []
    for day in sorted(candidates):
        if not days[0] <= day <= days[-1]:
            continue
        try:
            moment = local_instant(datetime.combine(day, wall_time) + offset, zone_info)
        except OverflowError:  # a date near year 1 or 9999 shifted past the calendar
            continue
        if after < moment <= until:
            found.append((day, moment))
    return found

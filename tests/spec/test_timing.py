"""Local wall-clock arithmetic in the contact's zone: times of day, quiet hours, birthdays."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from temporal_journeys.journeys.timing import (
    local_instant,
    next_date_occurrence,
    next_local_time,
    quiet_until,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(zone: str, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


# --- next_local_time ------------------------------------------------------------------------


def test_next_0900_in_new_york_and_tokyo():
    now = utc(2026, 11, 22, 12, 0)  # 07:00 in New York (EST), 21:00 in Tokyo
    assert next_local_time(now, "America/New_York", time(9)) == utc(2026, 11, 22, 14, 0)
    assert next_local_time(now, "Asia/Tokyo", time(9)) == utc(2026, 11, 23, 0, 0)


def test_new_york_0900_follows_daylight_saving_time():
    summer = next_local_time(utc(2026, 7, 1, 0, 0), "America/New_York", time(9))
    assert summer == utc(2026, 7, 1, 13, 0)  # EDT, UTC-4
    winter = next_local_time(utc(2026, 1, 1, 0, 0), "America/New_York", time(9))
    assert winter == utc(2026, 1, 1, 14, 0)  # EST, UTC-5


def test_results_are_aware_utc():
    moment = next_local_time(utc(2026, 1, 1), "Asia/Tokyo", time(9))
    assert moment.tzinfo is UTC


def test_now_exactly_at_the_time_is_now_and_just_after_is_tomorrow():
    now = local("Asia/Tokyo", 2026, 11, 22, 9, 0)
    assert next_local_time(now, "Asia/Tokyo", time(9)) == now
    later = now + timedelta(microseconds=1)
    assert next_local_time(later, "Asia/Tokyo", time(9)) == now + timedelta(days=1)


def test_now_in_another_offset_is_the_same_instant():
    now = datetime(2026, 11, 22, 7, 0, tzinfo=ZoneInfo("America/New_York"))
    assert next_local_time(now, "America/New_York", time(9)) == utc(2026, 11, 22, 14, 0)


def test_a_naive_now_is_taken_as_utc():
    assert next_local_time(datetime(2026, 1, 1, 8), "UTC", time(9)) == utc(2026, 1, 1, 9)


def test_weekdays_restrict_the_day():
    sunday = utc(2026, 11, 22, 12, 0)
    assert next_local_time(sunday, "UTC", time(10), ["mon"]) == utc(2026, 11, 23, 10, 0)
    assert next_local_time(sunday, "UTC", time(10), ["sat"]) == utc(2026, 11, 28, 10, 0)
    assert next_local_time(sunday, "UTC", time(10), ["tue", "fri"]) == utc(2026, 11, 24, 10, 0)


def test_todays_weekday_after_the_time_waits_a_week():
    sunday_noon = utc(2026, 11, 22, 12, 0)
    assert next_local_time(sunday_noon, "UTC", time(10), ["sun"]) == utc(2026, 11, 29, 10, 0)
    assert next_local_time(sunday_noon, "UTC", time(13), ["sun"]) == utc(2026, 11, 22, 13, 0)


def test_weekdays_are_those_of_the_local_date():
    # 23:30 UTC on Sunday is already Monday 08:30 in Tokyo.
    now = utc(2026, 11, 22, 23, 30)
    assert next_local_time(now, "Asia/Tokyo", time(9), ["mon"]) == utc(2026, 11, 23, 0, 0)
    assert next_local_time(now, "UTC", time(9), ["mon"]) == utc(2026, 11, 23, 9, 0)


def test_no_weekdays_means_any_day_and_unknown_names_are_refused():
    now = utc(2026, 11, 22, 12, 0)
    assert next_local_time(now, "UTC", time(9), []) == utc(2026, 11, 23, 9, 0)
    with pytest.raises(ValueError, match="unknown weekday"):
        next_local_time(now, "UTC", time(9), ["monday"])


@pytest.mark.parametrize("name", ["Mars/Olympus", "America", "", None, "../etc/passwd", "utc"])
def test_unknown_zones_fall_back_to_utc(name: str | None):
    assert next_local_time(utc(2026, 1, 1, 8), name, time(9)) == utc(2026, 1, 1, 9)  # type: ignore[arg-type]


def test_a_time_skipped_by_dst_moves_to_the_end_of_the_gap():
    # Berlin skips 02:00-03:00 on Sunday 29 March 2026 (the last Sunday of March): 02:30 does
    # not exist, and the first valid instant after the gap is 03:00 CEST, 01:00 UTC.
    moment = next_local_time(utc(2026, 3, 28, 23, 0), "Europe/Berlin", time(2, 30))
    assert moment == utc(2026, 3, 29, 1, 0)
    assert moment == local("Europe/Berlin", 2026, 3, 29, 3, 0)
    # The next night 02:30 exists again, in CEST.
    after = next_local_time(moment + timedelta(seconds=1), "Europe/Berlin", time(2, 30))
    assert after == utc(2026, 3, 30, 0, 30)


def test_new_york_spring_gap_too():
    # 8 March 2026: New York goes from 02:00 EST to 03:00 EDT (07:00 UTC).
    assert next_local_time(utc(2026, 3, 8, 5), "America/New_York", time(2, 15)) == utc(
        2026, 3, 8, 7
    )


def test_a_repeated_time_means_its_first_occurrence():
    # Berlin shows 02:00-03:00 twice on 25 October 2026: first CEST (UTC+2), then CET (UTC+1).
    first = next_local_time(utc(2026, 10, 24, 12), "Europe/Berlin", time(2, 30))
    assert first == utc(2026, 10, 25, 0, 30)
    # Between the two occurrences the first is past, so the answer is the next night.
    between = next_local_time(utc(2026, 10, 25, 0, 45), "Europe/Berlin", time(2, 30))
    assert between == utc(2026, 10, 26, 1, 30)


def test_local_instant_rules():
    berlin = "Europe/Berlin"
    assert local_instant(datetime(2026, 3, 29, 2, 59), berlin) == utc(2026, 3, 29, 1, 0)
    assert local_instant(datetime(2026, 10, 25, 2, 0), berlin) == utc(2026, 10, 25, 0, 0)
    assert local_instant(datetime(2026, 6, 1, 12, 0), berlin) == utc(2026, 6, 1, 10, 0)


# --- quiet_until ----------------------------------------------------------------------------

PARIS = "Europe/Paris"  # UTC+1 in November


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        ((11, 22, 22, 30), (11, 23, 8, 0)),  # late evening: until 08:00 next morning
        ((11, 22, 21, 0), (11, 23, 8, 0)),  # the start is inside
        ((11, 23, 0, 0), (11, 23, 8, 0)),  # midnight
        ((11, 23, 7, 59), (11, 23, 8, 0)),  # just before the end: 08:00 the same day
        ((11, 23, 8, 0), None),  # the end is outside
        ((11, 23, 12, 0), None),
        ((11, 22, 20, 59), None),
    ],
)
def test_quiet_hours_21_to_08_across_midnight(clock: tuple[int, ...], expected: tuple | None):
    now = local(PARIS, 2026, *clock)
    until = quiet_until(now, PARIS, time(21), time(8))
    assert until == (None if expected is None else local(PARIS, 2026, *expected))


def test_quiet_hours_at_2230_in_new_york_end_at_0800_local():
    now = local("America/New_York", 2026, 11, 22, 22, 30)
    assert quiet_until(now, "America/New_York", time(21), time(8)) == utc(2026, 11, 23, 13, 0)


def test_quiet_hours_within_a_day_and_empty_window():
    assert quiet_until(utc(2026, 1, 1, 13), "UTC", time(12), time(14)) == utc(2026, 1, 1, 14)
    assert quiet_until(utc(2026, 1, 1, 11, 59), "UTC", time(12), time(14)) is None
    assert quiet_until(utc(2026, 1, 1, 14), "UTC", time(12), time(14)) is None
    assert quiet_until(utc(2026, 1, 1, 13), "UTC", time(12), time(12)) is None


def test_quiet_hours_ending_after_a_spring_change_end_at_local_0800():
    # 22:30 CET on 28 March 2026; clocks go forward that night, so 08:00 is CEST (06:00 UTC).
    now = local(PARIS, 2026, 3, 28, 22, 30)
    assert quiet_until(now, PARIS, time(21), time(8)) == utc(2026, 3, 29, 6, 0)


def test_quiet_hours_ending_in_a_repeated_hour_end_at_the_next_occurrence():
    # A window 01:00-02:45 on 25 October 2026 in Paris; 02:30 CET is the second pass of the
    # repeated hour: the window ends at 02:45 CET that night, not a day later.
    now = local(PARIS, 2026, 10, 25, 2, 30, fold=1)
    assert quiet_until(now, PARIS, time(1), time(2, 45)) == local(
        PARIS, 2026, 10, 25, 2, 45, fold=1
    )
    # And in the first pass, at its first occurrence.
    first = local(PARIS, 2026, 10, 25, 2, 30)
    assert quiet_until(first, PARIS, time(1), time(2, 45)) == local(PARIS, 2026, 10, 25, 2, 45)


def test_quiet_hours_ending_in_a_spring_gap_end_after_the_gap():
    now = local(PARIS, 2026, 3, 29, 1, 30)
    assert quiet_until(now, PARIS, time(1), time(2, 30)) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST


# --- next_date_occurrence -------------------------------------------------------------------

NINE = time(9)
DAY = timedelta(days=1)


def test_birthday_minus_one_day_crosses_the_year_end():
    # A 1 January birthday minus a day is 31 December: on 31 December after 09:00 the next one
    # is a year later, on 30 December it is the next day.
    late = next_date_occurrence(utc(2026, 12, 31, 12), "UTC", "1990-01-01", -DAY, NINE, True)
    assert late == utc(2027, 12, 31, 9)
    early = next_date_occurrence(utc(2026, 12, 30), "UTC", "1990-01-01", -DAY, NINE, True)
    assert early == utc(2026, 12, 31, 9)


def test_birthday_plus_one_day_crosses_the_year_end():
    moment = next_date_occurrence(utc(2026, 12, 31, 12), "UTC", "1990-12-31", DAY, NINE, True)
    assert moment == utc(2027, 1, 1, 9)


def test_birthday_today_before_and_after_the_time():
    tokyo = "Asia/Tokyo"  # 09:00 in Tokyo is 00:00 UTC
    before = local(tokyo, 2026, 3, 15, 8, 59)
    assert next_date_occurrence(before, tokyo, "1990-03-15", timedelta(0), NINE, True) == utc(
        2026, 3, 15, 0
    )
    after = local(tokyo, 2026, 3, 15, 9, 1)
    assert next_date_occurrence(after, tokyo, "1990-03-15", timedelta(0), NINE, True) == utc(
        2027, 3, 15, 0
    )
    exactly = local(tokyo, 2026, 3, 15, 9, 0)
    assert next_date_occurrence(exactly, tokyo, "1990-03-15", timedelta(0), NINE, True) == exactly


def test_february_29_birthdays_fall_on_the_28th_in_common_years():
    zero = timedelta(0)
    common = next_date_occurrence(utc(2026, 1, 1), "UTC", "2000-02-29", zero, NINE, True)
    assert common == utc(2026, 2, 28, 9)
    leap = next_date_occurrence(utc(2027, 3, 1), "UTC", "2000-02-29", zero, NINE, True)
    assert leap == utc(2028, 2, 29, 9)
    day_before = next_date_occurrence(utc(2026, 1, 1), "UTC", "2000-02-29", -DAY, NINE, True)
    assert day_before == utc(2026, 2, 27, 9)


def test_a_one_off_date_is_returned_even_when_past():
    past = next_date_occurrence(utc(2026, 1, 1), "UTC", date(2025, 5, 1), -DAY, NINE, False)
    assert past == utc(2025, 4, 30, 9)
    future = next_date_occurrence(utc(2026, 1, 1), "UTC", "2026-05-01", DAY, NINE, False)
    assert future == utc(2026, 5, 2, 9)


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-01T23:30:00-05:00",  # its own date part, never converted to another zone
        "2026-05-01T10:00:00Z",
        "2026-05-01 10:00",
        " 2026-05-01 ",
        datetime(2026, 5, 1, 23, 30, tzinfo=UTC),
        date(2026, 5, 1),
    ],
)
def test_dates_are_read_from_isoformat_dates_and_datetimes(value: object):
    moment = next_date_occurrence(utc(2026, 1, 1), "Asia/Tokyo", value, timedelta(0), NINE, False)  # type: ignore[arg-type]
    assert moment == local("Asia/Tokyo", 2026, 5, 1, 9)


@pytest.mark.parametrize("value", ["someday", "", None, 19900315, "1990-02-30", "15/03/1990"])
def test_unreadable_or_missing_dates_give_none(value: object):
    for yearly in (True, False):
        assert (
            next_date_occurrence(utc(2026, 1, 1), "UTC", value, timedelta(0), NINE, yearly)  # type: ignore[arg-type]
            is None
        )


def test_an_offset_is_wall_clock_time_in_the_contacts_zone():
    # Two hours before 09:00 on the date; whole days keep the local time across a DST change.
    hours = next_date_occurrence(
        utc(2026, 1, 1), "UTC", "2026-05-01", -timedelta(hours=2), NINE, False
    )
    assert hours == utc(2026, 5, 1, 7)
    across = next_date_occurrence(utc(2026, 1, 1), "Europe/Berlin", "2026-03-30", -DAY, NINE, False)
    assert across == local("Europe/Berlin", 2026, 3, 29, 9)

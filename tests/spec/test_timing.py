"""Local wall-clock arithmetic in the contact's zone: times of day, quiet hours, birthdays."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from journeys.timing import next_date_occurrence, next_local_time, quiet_until


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_next_0900_in_new_york_and_tokyo():
    now = utc(2026, 11, 22, 12, 0)  # 07:00 in New York, 21:00 in Tokyo
    assert next_local_time(now, "America/New_York", time(9)) == utc(2026, 11, 22, 14, 0)
    assert next_local_time(now, "Asia/Tokyo", time(9)) == utc(2026, 11, 23, 0, 0)


def test_now_exactly_at_the_time_is_now():
    now = utc(2026, 11, 22, 9, 0)
    assert next_local_time(now, "UTC", time(9)) == now


def test_weekdays_restrict_the_day():
    sunday = utc(2026, 11, 22, 12, 0)
    assert next_local_time(sunday, "UTC", time(10), ["mon"]) == utc(2026, 11, 23, 10, 0)
    assert next_local_time(sunday, "UTC", time(10), ["sat"]) == utc(2026, 11, 28, 10, 0)


def test_unknown_zone_falls_back_to_utc():
    assert next_local_time(utc(2026, 1, 1, 8), "Mars/Olympus", time(9)) == utc(2026, 1, 1, 9)


def test_a_time_skipped_by_dst_lands_past_the_gap():
    # Berlin skips 02:00-03:00 on 29 March 2026; 02:30 does not exist that night.
    moment = next_local_time(utc(2026, 3, 28, 23, 0), "Europe/Berlin", time(2, 30))
    assert moment == utc(2026, 3, 29, 1, 30)  # 03:30 CEST


def test_quiet_hours_across_midnight():
    paris = "Europe/Paris"  # UTC+1 in November
    assert quiet_until(utc(2026, 11, 22, 21, 30), paris, time(21), time(8)) == utc(2026, 11, 23, 7)
    assert quiet_until(utc(2026, 11, 23, 6, 59), paris, time(21), time(8)) == utc(2026, 11, 23, 7)
    assert quiet_until(utc(2026, 11, 23, 7, 0), paris, time(21), time(8)) is None
    assert quiet_until(utc(2026, 11, 23, 12, 0), paris, time(21), time(8)) is None


def test_quiet_hours_within_a_day_and_empty_window():
    assert quiet_until(utc(2026, 1, 1, 13), "UTC", time(12), time(14)) == utc(2026, 1, 1, 14)
    assert quiet_until(utc(2026, 1, 1, 13), "UTC", time(12), time(12)) is None


def test_birthday_minus_one_day_crosses_the_year_end():
    now = utc(2026, 12, 31, 12)
    moment = next_date_occurrence(now, "UTC", "1990-01-01", -timedelta(days=1), time(9), True)
    assert moment == utc(2027, 12, 31, 9)
    moment = next_date_occurrence(
        utc(2026, 12, 30), "UTC", "1990-01-01", -timedelta(days=1), time(9), True
    )
    assert moment == utc(2026, 12, 31, 9)


def test_february_29_birthdays_fall_on_the_28th_in_common_years():
    moment = next_date_occurrence(utc(2026, 1, 1), "UTC", "2000-02-29", timedelta(0), time(9), True)
    assert moment == utc(2026, 2, 28, 9)


def test_a_one_off_date_and_unreadable_values():
    assert next_date_occurrence(
        utc(2026, 1, 1), "UTC", date(2025, 5, 1), timedelta(0), time(9), False
    ) == utc(2025, 5, 1, 9)
    assert next_date_occurrence(
        utc(2026, 1, 1), "UTC", "2026-05-01T10:00:00Z", timedelta(0), time(9), False
    ) == utc(2026, 5, 1, 9)
    assert (
        next_date_occurrence(utc(2026, 1, 1), "UTC", "someday", timedelta(0), time(9), True) is None
    )

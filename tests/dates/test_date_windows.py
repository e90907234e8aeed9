"""Which contacts a date schedule's fire enters: the pure rule (occurrence, local moment, the
window) and the set-based query that narrows contacts to it, on Postgres and SQLite."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from temporal_journeys.activities.date_entry import find_due
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import DateAttributeTrigger
from temporal_journeys.journeys.timing import date_keys_between, date_occurrences_between
from temporal_journeys.store.db import Database
from tests.support import harness as h

QUARTER = timedelta(minutes=15)
NINE = time(9, 0)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def occurrences(value: str, tz: str, fire: datetime, **rule) -> list[tuple[date, datetime]]:
    rule = {"at": NINE, "offset": timedelta(0), "yearly": True, **rule}
    return date_occurrences_between(
        value, tz, rule["at"], rule["offset"], rule["yearly"], fire - QUARTER, fire
    )


@pytest.mark.parametrize(
    ("tz", "fire"),
    [
        ("Asia/Tokyo", utc(2027, 1, 15, 0, 0)),  # UTC+9
        ("Europe/Paris", utc(2027, 1, 15, 8, 0)),  # UTC+1 in winter
        ("America/New_York", utc(2027, 1, 15, 14, 0)),  # UTC-5 in winter
        ("Europe/Paris", utc(2027, 7, 15, 7, 0)),  # UTC+2 in summer
    ],
)
def test_a_birthday_is_due_at_nine_local_in_the_fire_that_ends_there(tz: str, fire: datetime):
    birthday = f"1990-{fire.month:02d}-15"
    occurrence = date(2027, fire.month, 15)

    assert occurrences(birthday, tz, fire) == [(occurrence, fire)]
    # The window is (fire - 15 min, fire]: the fire before and the one after see nothing.
    assert occurrences(birthday, tz, fire - QUARTER) == []
    assert occurrences(birthday, tz, fire + QUARTER) == []


def test_the_offset_moves_the_moment_and_the_occurrence_stays_the_date():
    # Three days before the birthday, at 09:00 in Tokyo: 12 January 00:00 UTC.
    fire = utc(2027, 1, 12, 0, 0)
    assert occurrences("1990-01-15", "Asia/Tokyo", fire, offset=timedelta(days=-3)) == [
        (date(2027, 1, 15), fire)
    ]


def test_29_february_is_celebrated_on_28_february_in_common_years():
    assert occurrences("1992-02-29", "UTC", utc(2027, 2, 28, 9, 0)) == [
        (date(2027, 2, 28), utc(2027, 2, 28, 9, 0))
    ]
    assert occurrences("1992-02-29", "UTC", utc(2027, 3, 1, 9, 0)) == []
    assert occurrences("1992-02-29", "UTC", utc(2028, 2, 29, 9, 0)) == [
        (date(2028, 2, 29), utc(2028, 2, 29, 9, 0))
    ]
    assert "02-29" in date_keys_between(
        utc(2027, 2, 28, 8, 45), utc(2027, 2, 28, 9), NINE, timedelta(0), yearly=True
    )


def test_a_dated_trigger_enters_once_on_the_date_and_not_before_it():
    fire = utc(2027, 3, 1, 9, 0)
    assert occurrences("2027-03-01", "UTC", fire, yearly=False) == [(date(2027, 3, 1), fire)]
    assert occurrences("2027-03-01", "UTC", utc(2028, 3, 1, 9), yearly=False) == []
    # Yearly anniversaries start at the date itself: none the year before it.
    assert occurrences("2027-03-01", "UTC", utc(2026, 3, 1, 9)) == []


def test_unreadable_dates_have_no_occurrence():
    for value in ("", "soon", None, 19900115, "1990-13-01"):
        assert occurrences(value, "UTC", utc(2027, 1, 15, 9)) == []  # type: ignore[arg-type]


def test_a_window_covers_the_days_any_zone_can_bring_into_it():
    keys = date_keys_between(utc(2027, 1, 15, 8, 45), utc(2027, 1, 15, 9), NINE, timedelta(0), True)
    # 08:45 to 09:00 UTC is 09:00 somewhere between 14 January (UTC+14) and 15 January, with a
    # day's slack either side.
    assert keys == ["01-13", "01-14", "01-15", "01-16"]
    dated = date_keys_between(
        utc(2027, 1, 15, 8, 45), utc(2027, 1, 15, 9), NINE, timedelta(days=-3), False
    )
    assert dated == ["2027-01-16", "2027-01-17", "2027-01-18", "2027-01-19"]


def test_a_window_longer_than_a_month_is_refused():
    with pytest.raises(ValueError, match="at most 31 days"):
        date_keys_between(utc(2027, 1, 1), utc(2027, 3, 1), NINE, timedelta(0), True)


def test_the_query_finds_exactly_the_contacts_due_in_their_own_zones(db: Database):
    tokyo = h.contact(db, birthday="1990-01-15", timezone="Asia/Tokyo")
    paris = h.contact(db, birthday="1985-01-15T23:30:00+01:00", timezone="Europe/Paris")
    h.contact(db, birthday="1990-01-16", timezone="Asia/Tokyo")  # the next day
    h.contact(db, birthday="1990-01-15", timezone="America/New_York")  # later that day
    h.contact(db, name="no birthday")
    unknown_zone = h.contact(db, birthday="1970-01-15", timezone="Mars/Olympus")
    trigger = DateAttributeTrigger(date_attribute="birthday", yearly=True)

    with db.connection() as connection:
        at_midnight_utc = find_due(
            connection, trigger, utc(2027, 1, 14, 23, 45), utc(2027, 1, 15), "UTC"
        )
        at_eight_utc = find_due(
            connection, trigger, utc(2027, 1, 15, 7, 45), utc(2027, 1, 15, 8), "UTC"
        )
        at_nine_utc = find_due(
            connection, trigger, utc(2027, 1, 15, 8, 45), utc(2027, 1, 15, 9), "UTC"
        )
        # A contact without a known zone takes the settings' default zone.
        tokyo_default = find_due(
            connection, trigger, utc(2027, 1, 14, 23, 45), utc(2027, 1, 15), "Asia/Tokyo"
        )

    assert [(d.contact.id, d.occurrence) for d in at_midnight_utc] == [(tokyo, date(2027, 1, 15))]
    assert [d.contact.id for d in at_eight_utc] == [paris]
    assert at_eight_utc[0].contact.timezone == "Europe/Paris"
    assert [d.contact.id for d in at_nine_utc] == [unknown_zone]
    assert sorted(d.contact.id for d in tokyo_default) == sorted([tokyo, unknown_zone])
    assert {d.contact.timezone for d in tokyo_default} == {"Asia/Tokyo"}


def test_the_default_zone_must_be_a_zone():
    assert Settings(default_timezone="Asia/Tokyo").default_timezone == "Asia/Tokyo"
    with pytest.raises(ValidationError, match="JOURNEYS_DEFAULT_TIMEZONE: 'Mars/Olympus'"):
        Settings(default_timezone="Mars/Olympus")

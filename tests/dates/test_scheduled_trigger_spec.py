"""The `schedule` trigger in a journey document: what it accepts, a 422 naming the JSON path of
a bad cron, zone or moment, the cron reading itself and the calendars Temporal gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import ScheduleCalendarSpec, ScheduleRange

from temporal_journeys.api.services.schedules import build_scheduled, calendars
from temporal_journeys.journeys.cron import CronError, parse_cron
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import CronSchedule, OnceSchedule, ScheduleTrigger
from temporal_journeys.journeys.validation import load_document, parse_journey
from tests.support.api import Api

YAML = """
key: newsletter
name: Weekly newsletter
trigger: {schedule: {cron: "0 9 * * MON", timezone: Europe/Paris}, segment: readers}
re_entry: always
steps:
  - id: bye
    exit: {}
"""


def test_the_trigger_reads_from_yaml_and_round_trips():
    trigger = parse_journey(load_document(YAML)).trigger
    assert trigger == ScheduleTrigger(
        schedule=CronSchedule(cron="0 9 * * MON", timezone="Europe/Paris"), segment="readers"
    )
    assert trigger.model_dump(mode="json") == {
        "schedule": {"cron": "0 9 * * MON", "timezone": "Europe/Paris"},
        "segment": "readers",
    }
    assert CronSchedule(cron="*/15  8-18 * * 1-5").model_dump(mode="json") == {
        "cron": "*/15 8-18 * * 1-5",  # spaces tidied; the zone defaults to UTC
        "timezone": "UTC",
    }
    once = parse_journey(
        load_document(
            YAML.replace(
                'cron: "0 9 * * MON", timezone: Europe/Paris', 'at: "2026-12-24T09:00:00+01:00"'
            )
        )
    ).trigger
    assert isinstance(once, ScheduleTrigger) and isinstance(once.schedule, OnceSchedule)
    assert once.schedule.at == datetime(2026, 12, 24, 8, 0, tzinfo=UTC)
    assert once.model_dump(mode="json")["schedule"] == {"at": "2026-12-24T09:00:00+01:00"}


@pytest.mark.parametrize(
    ("schedule", "path", "message"),
    [
        ({"cron": "0 9 * MON"}, "$.trigger.schedule.cron", "5 fields"),
        ({"cron": "0 9 * * * *"}, "$.trigger.schedule.cron", "this one has 6"),
        ({"cron": "60 9 * * MON"}, "$.trigger.schedule.cron", "minute: 60 is out of range"),
        ({"cron": "0 24 * * *"}, "$.trigger.schedule.cron", "hour: 24 is out of range (0-23)"),
        ({"cron": "0 9 0 * *"}, "$.trigger.schedule.cron", "day of month: 0 is out of range"),
        ({"cron": "0 9 * 13 *"}, "$.trigger.schedule.cron", "month: 13"),
        ({"cron": "0 9 * * FUN"}, "$.trigger.schedule.cron", "'fun' is not a number or a name"),
        ({"cron": "0 9-5 * * *"}, "$.trigger.schedule.cron", "range 9-5 goes backwards"),
        ({"cron": "*/0 9 * * *"}, "$.trigger.schedule.cron", "a step is at least 1"),
        ({"cron": "@weekly"}, "$.trigger.schedule.cron", "5 fields"),
        ({"cron": 9}, "$.trigger.schedule.cron", "a cron expression is a string"),
        (
            {"cron": "0 9 * * MON", "timezone": "Europe/Pariss"},
            "$.trigger.schedule.timezone",
            "'Europe/Pariss' is not an IANA time zone",
        ),
        (
            {"cron": "0 9 * * MON", "timezone": "America"},
            "$.trigger.schedule.timezone",
            "not an IANA time zone",
        ),
        (
            {"cron": "0 9 * * MON", "timezone": "../etc/passwd"},
            "$.trigger.schedule.timezone",
            "not an IANA time zone",
        ),
        ({"at": "2026-12-24T09:00:00"}, "$.trigger.schedule.at", "timezone info"),
        ({"at": "Christmas"}, "$.trigger.schedule.at", "valid datetime"),
        ({"cron": "0 9 * * MON", "every": "week"}, "$.trigger.schedule.every", "Extra inputs"),
        ({"every": "week"}, "$.trigger.schedule", "a schedule is {cron"),
    ],
)
async def test_a_bad_schedule_is_a_422_naming_its_path(
    api: Api, schedule: dict, path: str, message: str
):
    document = load_document(YAML)
    document["trigger"] = {**document["trigger"], "schedule": schedule}

    response = await api.http.put("/v1/journeys/newsletter", json=document, headers=api.admin)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["path"] == path
    assert message in problem["message"]


async def test_the_segment_is_required_and_must_exist(api: Api):
    document = load_document(YAML)
    del document["trigger"]["segment"]
    response = await api.http.put("/v1/journeys/newsletter", json=document, headers=api.admin)
    assert response.status_code == 422, response.text
    assert [p["path"] for p in response.json()["detail"]] == ["$.trigger.segment"]

    document["trigger"]["segment"] = "no-such-segment"
    response = await api.http.put("/v1/journeys/newsletter", json=document, headers=api.admin)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"path": "$.trigger.segment", "message": "unknown segment 'no-such-segment'"}
    ]


def test_a_moment_in_the_past_is_valid_and_never_fires():
    # Validation does not read the clock (a document validates the same today and in a
    # year); its schedule's one calendar is in that year, so Temporal has nothing to run.
    document = load_document(YAML)
    document["trigger"]["schedule"] = {"at": "2020-01-01T09:00:00Z"}
    journey = parse_journey(document)
    schedule = build_scheduled("newsletter", journey, Settings(database_url="sqlite://"))
    [calendar] = schedule.spec.calendars
    assert calendar.year == (ScheduleRange(2020),)
    assert (calendar.month, calendar.day_of_month, calendar.hour) == (
        (ScheduleRange(1),),
        (ScheduleRange(1),),
        (ScheduleRange(9),),
    )


def test_cron_fields_read_as_classic_cron():
    cron = parse_cron("0,30 9-17/4 * JAN-mar 1-5")
    assert cron.minutes == (0, 30)
    assert cron.hours == (9, 13, 17)
    assert cron.months == (1, 2, 3)
    assert cron.weekdays == (1, 2, 3, 4, 5)
    assert parse_cron("0 9 * * 7").weekdays == (0,)  # 7 is Sunday as 0 is
    assert parse_cron("5/20 * * * *").minutes == (5, 25, 45)
    with pytest.raises(CronError):
        parse_cron("0 9 * * MON-FRI/0")


def test_day_of_month_and_weekday_both_restricted_fire_on_either():
    # Classic cron: the 1st of the month OR any Monday. Temporal ANDs a calendar's fields,
    # so the schedule gets one calendar each.
    cron = parse_cron("0 9 1 * MON")
    assert calendars(cron) == [
        ScheduleCalendarSpec(
            second=(ScheduleRange(0),),
            minute=(ScheduleRange(0),),
            hour=(ScheduleRange(9),),
            day_of_month=(ScheduleRange(1),),
            month=tuple(ScheduleRange(m) for m in range(1, 13)),
            day_of_week=tuple(ScheduleRange(d) for d in range(7)),
        ),
        ScheduleCalendarSpec(
            second=(ScheduleRange(0),),
            minute=(ScheduleRange(0),),
            hour=(ScheduleRange(9),),
            day_of_month=tuple(ScheduleRange(d) for d in range(1, 32)),
            month=tuple(ScheduleRange(m) for m in range(1, 13)),
            day_of_week=(ScheduleRange(1),),
        ),
    ]
    january = datetime(2027, 1, 1, tzinfo=UTC)
    fires = list(cron.fires_between("UTC", january, january + timedelta(days=14)))
    # Fri 1st, then Mondays 4th and 11th.
    assert [f.day for f in fires] == [1, 4, 11]
    # A weekday given with `*` in the day of month is ANDed, as `*` matches every day.
    only_mondays = parse_cron("0 9 */1 * MON")
    assert [f.day for f in only_mondays.fires_between("UTC", january, january + timedelta(14))] == [
        4,
        11,
    ]


def test_fires_are_local_times_of_the_zone_across_a_clock_change():
    cron = parse_cron("30 2 * * *")  # 02:30 does not exist in Paris on 28 March 2027
    start = datetime(2027, 3, 26, tzinfo=UTC)
    fires = list(cron.fires_between("Europe/Paris", start, start + timedelta(days=4)))
    assert fires == [
        datetime(2027, 3, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2027, 3, 27, 1, 30, tzinfo=UTC),
        datetime(2027, 3, 29, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]

"""Retention settings: documented defaults, 0 for forever, bounds refused; the schedule they
call for."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from temporal_journeys.api.services import retention
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.workflows.retention import RETENTION_WORKFLOW, SCHEDULE_ID

URL = "sqlite:///:memory:"


def test_defaults_keep_a_year_of_events_and_ninety_days_of_message_contents():
    settings = Settings(database_url=URL)
    assert settings.retention_events_days == 365
    assert settings.retention_message_bodies_days == 90
    assert settings.retention_batch_size == 5_000


def test_zero_from_the_environment_keeps_forever(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JOURNEYS_RETENTION_EVENTS_DAYS", "0")
    monkeypatch.setenv("JOURNEYS_RETENTION_MESSAGE_BODIES_DAYS", "7")
    settings = Settings(database_url=URL)
    assert settings.retention_events_days is None
    assert settings.retention_message_bodies_days == 7
    assert retention.wanted(settings)
    assert not retention.wanted(Settings(database_url=URL, retention_message_bodies_days=0))


@pytest.mark.parametrize(
    "field, value",
    [
        ("retention_events_days", -1),
        ("retention_message_bodies_days", -30),
        ("retention_batch_size", 0),
        ("retention_batch_size", 10_001),
        ("retention_events_days", "a year"),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: object):
    with pytest.raises(ValidationError) as raised:
        Settings(database_url=URL, **{field: value})
    assert raised.value.errors()[0]["loc"] == (field,)


def test_the_schedule_fires_the_retention_workflow_daily_at_three_utc():
    settings = Settings(database_url=URL, task_queue="q", retention_events_days=30)
    schedule = retention.build(settings)
    assert schedule.action.workflow == RETENTION_WORKFLOW  # type: ignore[attr-defined]
    assert schedule.action.id == SCHEDULE_ID  # type: ignore[attr-defined]
    assert schedule.action.task_queue == "q"  # type: ignore[attr-defined]
    interval = schedule.spec.intervals[0]
    assert (interval.every, interval.offset) == (timedelta(days=1), timedelta(hours=3))
    assert "events kept 30 days, message contents 90 days" in (schedule.state.note or "")

"""`journeys simulate` on a journey entered by its own schedule: the simulation fires it at the
cron's local times (the time-skipping server runs no schedules), each fire entering the
segment's members of that moment; `until` is required, as for a date-entered journey."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from temporal_journeys.cli.simulate import Timeline, simulate
from temporal_journeys.journeys.validation import SpecInvalid

JOURNEY = """
key: weekly
name: Weekly
trigger: {schedule: {cron: "0 9 * * MON", timezone: Europe/Paris}, segment: readers}
re_entry: always
steps:
  - id: read
    update: {add_tags: [read]}
"""

SEGMENT = """
kind: segment
key: readers
name: Readers
condition: {trait: reads, eq: true}
"""


def files(tmp_path: Path, journey: str = JOURNEY) -> Path:
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "readers.yaml").write_text(SEGMENT)
    path = tmp_path / "weekly.yaml"
    path.write_text(journey)
    return path


async def test_a_scheduled_journeys_timeline_needs_until(tmp_path: Path):
    timeline = Timeline.model_validate({"contacts": [{"id": "a", "traits": {"reads": True}}]})

    with pytest.raises(SpecInvalid) as refused:
        await simulate(files(tmp_path), timeline)

    [problem] = refused.value.problems
    assert problem.path == "$.until"
    assert "enters by a schedule" in problem.message


async def test_members_enter_at_each_monday_nine_in_paris(tmp_path: Path):
    timeline = Timeline.model_validate(
        {
            "start": {"month": 1, "day": 1, "at": "00:00"},
            "until": "P14D",
            "contacts": [
                {"id": "reader", "traits": {"reads": True}},
                {"id": "other", "traits": {"reads": False}},
            ],
            # Joins the segment after the first Monday: enters at the second fire only.
            "events": [{"at": "P7DT12H", "userId": "late", "identify": {"reads": True}}],
        }
    )

    outcomes = await simulate(files(tmp_path), timeline)

    # To the minute: the trace's time is when the run's first step ran, just after the fire.
    entered = sorted(
        (o.contact_id, o.trace[0].at.replace(second=0, microsecond=0)) for o in outcomes
    )
    assert [contact for contact, _ in entered] == ["late", "reader", "reader"]
    for _, at in entered:
        # Monday 09:00 in Paris is 08:00 UTC in January.
        assert (at.astimezone(UTC).weekday(), at.astimezone(UTC).hour) == (0, 8)
    (_, late), (_, first), (_, second) = entered
    assert second - first == timedelta(days=7) and late == second
    assert all(o.status == "completed" for o in outcomes)


async def test_a_one_off_schedule_fires_once_inside_the_timeline(tmp_path: Path):
    # The clock starts on the next 1 June (the time-skipping server begins at today's date).
    now = datetime.now(UTC)
    year = now.year if (now.month, now.day) < (6, 1) else now.year + 1
    journey = JOURNEY.replace(
        '{cron: "0 9 * * MON", timezone: Europe/Paris}', f'{{at: "{year}-06-01T10:00:00+02:00"}}'
    )
    timeline = Timeline.model_validate(
        {
            "start": {"month": 6, "day": 1, "at": "00:00"},
            "until": "P2D",
            "contacts": [{"id": "reader", "traits": {"reads": True}}],
        }
    )

    outcomes = await simulate(files(tmp_path, journey), timeline)

    [outcome] = outcomes
    assert outcome.contact_id == "reader" and outcome.status == "completed"
    at = outcome.trace[0].at.astimezone(UTC).replace(second=0, microsecond=0)
    assert at == datetime(year, 6, 1, 8, 0, tzinfo=UTC)

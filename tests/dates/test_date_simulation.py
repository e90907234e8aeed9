"""`journeys simulate` on a journey entered by a date: the schedule's fires come at each
scripted contact's moment (the birthday example's test covers the entries); a timeline without
`until` is refused with its path, since such a journey has no last event to stop at."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_journeys.cli.simulate import Timeline, simulate
from temporal_journeys.journeys.validation import SpecInvalid

JOURNEY = """
key: dated
name: Dated
trigger: {date_attribute: renewal, at: "10:00"}
steps:
  - id: bye
    exit: {}
"""


async def test_a_date_journeys_timeline_needs_until(tmp_path: Path):
    path = tmp_path / "dated.yaml"
    path.write_text(JOURNEY)  # noqa: ASYNC240 - a small fixture file
    timeline = Timeline.model_validate(
        {"contacts": [{"id": "a", "traits": {"renewal": "2030-01-01"}}]}
    )

    with pytest.raises(SpecInvalid) as refused:
        await simulate(path, timeline)

    [problem] = refused.value.problems
    assert problem.path == "$.until"
    assert "enters by a date" in problem.message


async def test_a_yearly_entry_happens_once_at_its_local_moment(tmp_path: Path):
    path = tmp_path / "dated.yaml"
    # Yearly: the simulated clock starts on the next 1 January, whichever year that is.
    path.write_text(JOURNEY.replace("at: ", "yearly: true, at: "))  # noqa: ASYNC240
    timeline = Timeline.model_validate(
        {
            "start": {"month": 1, "day": 1, "at": "00:00"},
            "until": "P20D",
            "contacts": [
                {"id": "tokyo", "traits": {"renewal": "2020-01-10", "timezone": "Asia/Tokyo"}},
                {"id": "later", "traits": {"renewal": "2020-02-10"}},
            ],
        }
    )

    outcomes = await simulate(path, timeline)

    [tokyo] = outcomes
    assert tokyo.contact_id == "tokyo" and tokyo.status == "completed"
    # 10:00 in Tokyo is 01:00 UTC: nine days and one hour after the start.
    entered = tokyo.trace[0].at - tokyo.started
    assert entered.days == 9 and entered.seconds == 3600

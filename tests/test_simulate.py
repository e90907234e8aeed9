"""`journeys simulate` runs the real interpreter on a scripted timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from journeys.cli import app
from journeys.simulate import Start, Timeline, first_start, load_timeline, simulate

EXAMPLES = Path(__file__).parents[1] / "examples"
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def sends(outcome) -> list[timedelta]:
    return [round_to_minute(e.at - outcome.started) for e in outcome.trace if e.kind == "sent"]


def round_to_minute(delta: timedelta) -> timedelta:
    return timedelta(minutes=round(delta.total_seconds() / 60))


async def test_abandoned_cart_timeline_sends_at_1h_1d1h_and_4d1h():
    timeline = load_timeline(EXAMPLES / "timelines" / "abandoned-cart-no-action.yaml")

    [outcome] = await simulate(EXAMPLES / "abandoned-cart.yaml", timeline)

    assert outcome.status == "completed"
    assert sends(outcome) == [HOUR, DAY + HOUR, 4 * DAY + HOUR]


async def test_an_open_and_a_purchase_end_their_runs_early():
    timeline = load_timeline(EXAMPLES / "timelines" / "abandoned-cart-opened.yaml")

    outcomes = {o.contact_id: o for o in await simulate(EXAMPLES / "abandoned-cart.yaml", timeline)}

    assert outcomes["ada"].status == "completed" and sends(outcomes["ada"]) == [HOUR]
    assert outcomes["bob"].status == "converted" and sends(outcomes["bob"]) == [HOUR, DAY + HOUR]


def test_the_command_prints_the_trace_with_simulated_times():
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(EXAMPLES / "abandoned-cart.yaml"),
            "--events",
            str(EXAMPLES / "timelines" / "abandoned-cart-no-action.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ada: completed" in result.output
    assert "+4d 1h" in result.output and "last-chance      sent" in result.output


def test_the_clock_starts_at_the_next_moment_the_timeline_names():
    now = datetime(2026, 11, 25, 13, 46, tzinfo=UTC)
    assert first_start(now, Start(at="10:00")) == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert first_start(now, Start(at="14:00")) == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert first_start(now, Start(month=1, day=5, at="10:00")) == datetime(
        2027, 1, 5, 10, 0, tzinfo=UTC
    )
    assert first_start(now, Start(month=2, day=29)) == datetime(2028, 2, 29, tzinfo=UTC)
    with pytest.raises(ValidationError, match="day is out of range for month"):
        Start(month=2, day=30)  # never comes: refused rather than searched for forever


def test_a_timeline_line_is_an_event_or_an_enrolment():
    with pytest.raises(ValidationError, match="either `event` or `enroll`"):
        Timeline.model_validate({"events": [{"at": "PT0S", "userId": "a"}]})
    with pytest.raises(ValidationError, match="either `event` or `enroll`"):
        Timeline.model_validate(
            {"events": [{"at": "PT0S", "userId": "a", "event": "x", "enroll": "y"}]}
        )


def test_the_command_marks_runs_of_journeys_handed_to():
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(EXAMPLES / "channel-ladder.yaml"),
            "--events",
            str(EXAMPLES / "timelines" / "channel-ladder.yaml"),
        ],
        env={"JOURNEYS_SMS_QUIET_HOURS": "21:00-08:00"},
    )
    assert result.exit_code == 0, result.output
    assert "dan: completed" in result.output
    assert "dan [re-activation]: converted (goal order.completed)" in result.output
    assert "hand-off         handed_off  re-activation (journey/re-activation/dan)" in (
        result.output
    )


def test_the_command_reports_a_bad_timeline(tmp_path: Path):
    timeline = tmp_path / "bad.yaml"
    timeline.write_text("events:\n  - {at: soon, userId: ada, event: cart.abandoned}\n")
    result = CliRunner().invoke(
        app, ["simulate", str(EXAMPLES / "abandoned-cart.yaml"), "--events", str(timeline)]
    )
    assert result.exit_code == 1
    assert f"{timeline}:" in result.output and "events.0.at" in result.output

"""`journeys simulate` runs the real interpreter on a scripted timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from temporal_journeys.cli import simulate as simulate_module
from temporal_journeys.cli.commands import app
from temporal_journeys.cli.simulate import Start, Timeline, first_start, load_timeline, simulate

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


def test_a_timeline_line_is_an_event_an_identify_or_an_enrolment():
    one_of = "one of `event`, `identify`, `enroll` or `broadcast`"
    with pytest.raises(ValidationError, match=one_of):
        Timeline.model_validate({"events": [{"at": "PT0S", "userId": "a"}]})
    with pytest.raises(ValidationError, match=one_of):
        Timeline.model_validate(
            {"events": [{"at": "PT0S", "userId": "a", "event": "x", "enroll": "y"}]}
        )
    with pytest.raises(ValidationError, match=one_of):
        Timeline.model_validate(
            {"events": [{"at": "PT0S", "userId": "a", "event": "x", "identify": {"plan": "pro"}}]}
        )
    with pytest.raises(ValidationError, match="at or after the start"):
        Timeline.model_validate({"events": [{"at": "-P1D", "userId": "a", "enroll": "y"}]})
    with pytest.raises(ValidationError, match="`userId` is needed by every line but"):
        Timeline.model_validate({"events": [{"at": "PT0S", "userId": "a", "broadcast": "b"}]})
    history = Timeline.model_validate(
        {"events": [{"at": "-P10D", "userId": "a", "identify": {"plan": "pro"}}]}
    )
    assert history.events[0].at == -10 * DAY


# --- segment timelines -------------------------------------------------------------------------

SEGMENTS = {
    # Real time: moved in and out by identify.
    "pro": "kind: segment\nkey: pro\nname: Pro plan\ncondition: {trait: plan, eq: pro}\n",
    # Time alone takes contacts out: two orders within a week.
    "busy": (
        "kind: segment\nkey: busy\nname: Busy buyers\nrefresh: PT1H\n"
        "condition: {event: order.completed, within: P7D, min: 2}\n"
    ),
}
JOURNEY = """
key: {key}
name: On a segment
trigger: {{segment: {segment}}}
re_entry: always
exit_on: [{{segment_exited: {segment}}}]
steps:
  - id: which
    branch:
      cases:
        - {{when: {{segment: pro}}, next: pro-tag}}
      default: hold
  - id: pro-tag
    update: {{add_tags: [pro-member]}}
  - id: hold
    wait: P10D
  - id: done
    exit: {{reason: stayed ten days}}
"""


def segment_folder(tmp_path: Path, key: str, segment: str) -> Path:
    (tmp_path / "segments").mkdir()
    for name, text in SEGMENTS.items():
        (tmp_path / "segments" / f"{name}.yaml").write_text(text)
    journey = tmp_path / f"{key}.yaml"
    journey.write_text(JOURNEY.format(key=key, segment=segment))
    return journey


def traced(outcome, kind: str) -> list[tuple[timedelta, str | None]]:
    return [
        (round_to_minute(e.at - outcome.started), e.step) for e in outcome.trace if e.kind == kind
    ]


async def test_identify_lines_move_contacts_in_and_out_of_a_segment_journey(tmp_path: Path):
    journey = segment_folder(tmp_path, "pro-onboarding", "pro")
    timeline = Timeline.model_validate(
        {
            "start": {"at": "00:00"},
            "contacts": [
                {"id": "ada"},
                {"id": "bob"},
                # In the segment before the journey is published: never enters.
                {"id": "cleo", "traits": {"plan": "pro"}},
            ],
            "events": [
                {"at": "-P5D", "userId": "dan", "identify": {"plan": "pro"}},
                {"at": "P1D", "userId": "ada", "identify": {"plan": "pro"}},
                {"at": "P2D", "userId": "bob", "identify": {"plan": "pro"}},
                {"at": "P4D", "userId": "ada", "identify": {"plan": "free"}},
            ],
        }
    )

    runs = {o.contact_id: o for o in await simulate(journey, timeline)}

    assert set(runs) == {"ada", "bob"}
    ada, bob = runs["ada"], runs["bob"]
    # Entered at the identify (the same transaction moved them in), branched on membership.
    assert traced(ada, "entered")[0] == (DAY, "which")
    assert [e.detail for e in ada.trace if e.kind == "branched"] == ["case 1 -> pro-tag"]
    # Left the segment: its segment.exited event ends the run (exit_on segment_exited).
    assert ada.status == "exited" and ada.reason == "exit event segment.exited"
    assert traced(ada, "exited") == [(4 * DAY, "hold")]
    assert bob.status == "completed" and bob.reason == "stayed ten days"
    assert traced(bob, "completed") == [(12 * DAY, None)]


async def test_time_alone_takes_contacts_out_at_the_segments_next_refresh(tmp_path: Path):
    journey = segment_folder(tmp_path, "busy-perks", "busy")
    order = {"event": "order.completed"}
    timeline = Timeline.model_validate(
        {
            "start": {"at": "00:30"},
            "until": "P20D",
            "events": [
                {"at": "-P1D", "userId": "ada", **order},
                {"at": "PT0S", "userId": "ada", **order},  # in at once: two within a week
                {"at": "P1D", "userId": "bob", **order},
                {"at": "P3D", "userId": "bob", **order},
                {"at": "P4D", "userId": "bob", **order},
            ],
        }
    )

    runs = {o.contact_id: o for o in await simulate(journey, timeline)}

    ada, bob = runs["ada"], runs["bob"]
    assert traced(ada, "entered")[0] == (timedelta(0), "which")
    assert [e.detail for e in ada.trace if e.kind == "branched"] == ["default -> hold"]
    # Her order of the day before leaves the window on day 6 at 00:30; the hourly refresh
    # (on the hour, as a Temporal Schedule's interval) takes her out at 01:00.
    assert ada.status == "exited" and ada.reason == "exit event segment.exited"
    assert traced(ada, "exited") == [(6 * DAY + timedelta(minutes=30), "hold")]
    # Bob: in on day 3; his third order keeps him in when the first leaves the window (day
    # 8), he is out when the second leaves it (day 10, 00:30: the refresh at 01:00).
    assert traced(bob, "entered")[0] == (3 * DAY, "which")
    assert bob.status == "exited"
    assert traced(bob, "exited") == [(10 * DAY + timedelta(minutes=30), "hold")]


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


def test_the_command_simulates_a_broadcast_file():
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(EXAMPLES / "broadcasts" / "weekly-newsletter.yaml"),
            "--events",
            str(EXAMPLES / "timelines" / "weekly-newsletter.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bob: skipped" in result.output
    assert "+7d 9h        weekly-newsletter skipped  unsubscribed from topic 'newsletter'" in (
        result.output
    )


def test_the_command_reports_a_bad_broadcast_file(tmp_path: Path):
    (tmp_path / "broadcasts").mkdir()
    bad = tmp_path / "broadcasts" / "bad.yaml"
    bad.write_text("kind: broadcast\nkey: bad\nsegment: vip\nlocal_time: '9 am'\n")
    timeline = tmp_path / "timeline.yaml"
    timeline.write_text("events: [{at: PT0S, broadcast: bad}]\n")
    result = CliRunner().invoke(app, ["simulate", str(bad), "--events", str(timeline)])
    assert result.exit_code == 1
    assert f"{bad}: $.local_time:" in result.output


def test_the_command_reports_a_bad_timeline(tmp_path: Path):
    timeline = tmp_path / "bad.yaml"
    timeline.write_text("events:\n  - {at: soon, userId: ada, event: cart.abandoned}\n")
    result = CliRunner().invoke(
        app, ["simulate", str(EXAMPLES / "abandoned-cart.yaml"), "--events", str(timeline)]
    )
    assert result.exit_code == 1
    assert f"{timeline}:" in result.output and "events.0.at" in result.output


async def test_skipping_refreshes_that_change_nothing_matches_firing_every_hour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The simulator checks only the refresh fires where time can change a membership; firing
    the schedule every hour, as Temporal would, gives the same runs."""
    journey = segment_folder(tmp_path, "busy-perks", "busy")
    order = {"event": "order.completed"}
    timeline = Timeline.model_validate(
        {
            "start": {"at": "00:30"},
            "until": "P12D",
            "events": [
                {"at": "-P2DT5H", "userId": "ada", **order},
                {"at": "PT7H", "userId": "ada", **order},
                {"at": "P1DT3H", "userId": "bob", **order},
                {"at": "P3D", "userId": "bob", **order},
                {"at": "P9D", "userId": "bob", **order},
            ],
        }
    )

    def runs(outcomes) -> dict:
        # To the second: a workflow task takes some milliseconds of the simulated clock.
        return {
            o.contact_id: [
                (round((e.at - o.started).total_seconds()), e.step, e.kind) for e in o.trace
            ]
            for o in outcomes
        }

    skipping = runs(await simulate(journey, timeline))
    checked: list = []

    def every_fire(self) -> list:
        fires = [(simulate_module._next_tick(self._checked, e), k) for k, e in self._every.items()]
        checked.extend(fires)
        return sorted(fires)

    monkeypatch.setattr(simulate_module._Schedules, "_candidates", every_fire)
    hourly = runs(await simulate(journey, timeline))

    assert len(checked) >= 12 * 24  # every hour was looked at
    assert skipping == hourly and set(hourly) == {"ada", "bob"}

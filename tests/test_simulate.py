"""`journeys simulate` runs the real interpreter on a scripted timeline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from journeys.cli import app
from journeys.simulate import load_timeline, simulate

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

"""The example journeys: each is valid against the templates and journeys beside it, and each
runs its scripted timeline (examples/timelines/) on the real interpreter with the outcome its
header comment promises: when each message goes out, which branch, where each contact ends."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from journeys.cli import app
from journeys.rendering import render
from journeys.simulate import Outcome, load_timeline, simulate
from journeys.validation import load_document, parse_journey
from store import templates as templates_store

EXAMPLES = Path(__file__).parents[1] / "examples"
JOURNEY_FILES = sorted(EXAMPLES.glob("*.yaml"))
TEMPLATES = {path.stem: yaml.safe_load(path.read_text()) for path in EXAMPLES.glob("templates/*")}
KEYS = [load_document(path.read_text())["key"] for path in JOURNEY_FILES]
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture(autouse=True)
def production_channel_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulations read channel rules from the environment: pin them to the defaults."""
    monkeypatch.setenv("JOURNEYS_SMS_QUIET_HOURS", "21:00-08:00")
    for name in ("EMAIL_QUIET_HOURS", "EMAIL_DAILY_CAP", "SMS_DAILY_CAP"):
        monkeypatch.delenv(f"JOURNEYS_{name}", raising=False)


# --- the files -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda p: p.stem)
def test_example_is_valid_with_the_templates_and_journeys_beside_it(path: Path):
    journey = parse_journey(path.read_text(), templates=TEMPLATES, journeys=KEYS)
    assert journey.key == path.stem, "one journey per file, named by its key"


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda p: p.stem)
def test_example_renders_every_step(path: Path):
    result = CliRunner().invoke(app, ["render", str(path)])
    assert result.exit_code == 0, result.output
    for step in parse_journey(path.read_text()).steps:
        assert f'["{step.id}<br/>' in result.output or f'{{"{step.id}<br/>' in result.output


def test_the_seeds_journeys_are_all_there():
    assert set(KEYS) >= {
        "abandoned-cart",
        "channel-ladder",
        "re-activation",
        "welcome",
        "birthday",
        "first-purchase-feedback",
        "win-back",
        "lead-scoring",
        "trial-subject-test",
    }


@pytest.mark.parametrize("key", KEYS)
def test_every_example_has_a_timeline(key: str):
    timelines = list((EXAMPLES / "timelines").glob(f"{key}*.yaml"))
    assert timelines, f"no timeline for {key}"
    for path in timelines:
        load_timeline(path)


def test_every_template_is_used_loadable_and_renders():
    used = set()
    for path in JOURNEY_FILES:
        journey = parse_journey(path.read_text())
        used |= {s.send.template for s in journey.steps if hasattr(s, "send")}
    assert used == set(TEMPLATES), "a template no example sends, or a send with no template"
    fields = set(inspect.signature(templates_store.put).parameters) - {"session", "key"}
    context = {
        "contact": {"first_name": "Ada"},
        "event": {"item": "shoes"},
        "data": {"code": "CODE1"},
        "message": {"id": "msg_1"},
    }
    for key, template in TEMPLATES.items():
        assert set(template) <= fields, f"{key}: {set(template) - fields}"
        assert template["channel"] in ("email", "sms")
        rendered = render(
            template.get("subject"), template.get("html"), template.get("text"), context
        )
        assert rendered.text and "{{" not in rendered.text, key
        if template["channel"] == "email":
            assert rendered.subject, f"{key}: an email needs a subject"


# --- the timelines ---------------------------------------------------------------------------


async def run(key: str, timeline: str | None = None) -> dict[str, Outcome]:
    path = EXAMPLES / "timelines" / f"{timeline or key}.yaml"
    outcomes = await simulate(EXAMPLES / f"{key}.yaml", load_timeline(path))
    by_run = {}
    for outcome in outcomes:
        name = (
            outcome.contact_id
            if outcome.journey == key
            else f"{outcome.contact_id}/{outcome.journey}"
        )
        by_run.setdefault(name, outcome)
    return by_run


def at(outcome: Outcome, kind: str) -> list[tuple[timedelta, str | None]]:
    """(offset from the start, step) of each trace entry of ``kind``, to the minute."""
    return [
        (timedelta(minutes=round((e.at - outcome.started).total_seconds() / 60)), e.step)
        for e in outcome.trace
        if e.kind == kind
    ]


def sent(outcome: Outcome) -> list[tuple[timedelta, str | None]]:
    return at(outcome, "sent")


def details(outcome: Outcome, kind: str) -> list[str | None]:
    return [e.detail for e in outcome.trace if e.kind == kind]


async def test_channel_ladder_tags_the_channel_that_worked_and_hands_off_the_churned():
    runs = await run("channel-ladder")

    assert sent(runs["ada"]) == [(timedelta(0), "offer-email")]
    assert details(runs["ada"], "updated") == ["set preferred_channel; tag channel-email"]
    assert sent(runs["bob"]) == [(timedelta(0), "offer-email"), (2 * DAY, "offer-again")]
    assert details(runs["bob"], "updated") == ["set preferred_channel; tag channel-email"]
    assert sent(runs["cleo"])[-1] == (4 * DAY, "offer-sms")
    assert details(runs["cleo"], "updated") == ["set preferred_channel; tag channel-sms"]
    assert all(runs[c].status == "completed" for c in ("ada", "bob", "cleo", "dan", "eve"))

    dan = runs["dan"]
    assert at(dan, "timeout")[-1] == (6 * DAY, "sms-answered?")
    assert details(dan, "updated") == ["tag churned"]
    assert at(dan, "handed_off") == [(6 * DAY, "hand-off")]
    reactivation = runs["dan/re-activation"]
    assert sent(reactivation) == [(13 * DAY, "miss-you")]
    assert reactivation.status == "converted"

    # 10:00 UTC on 5 January is 02:00 in Los Angeles: the SMS waits for 08:00 there.
    eve = runs["eve"]
    assert at(eve, "deferred") == [(4 * DAY, "offer-sms")]
    assert sent(eve)[-1] == (4 * DAY + 6 * HOUR, "offer-sms")
    assert details(eve, "updated") == ["set preferred_channel; tag channel-sms"]

    fay = runs["fay"]
    assert fay.status == "exited" and fay.reason == "exit event sms.unsubscribed"
    assert at(fay, "exited") == [(4 * DAY + HOUR, "sms-answered?")]
    assert details(fay, "updated") == []


async def test_re_activation_offers_once_then_tags_dormant_and_refuses_early_re_entry():
    outcomes = await simulate(
        EXAMPLES / "re-activation.yaml",
        load_timeline(EXAMPLES / "timelines" / "re-activation.yaml"),
    )
    runs = {(o.contact_id, o.status): o for o in outcomes}

    ada, bob = runs["ada", "completed"], runs["bob", "completed"]
    assert sent(ada) == [(7 * DAY, "miss-you")]
    assert details(ada, "updated") == ["tag reactivated; untag churned"]
    assert sent(bob) == [(7 * DAY, "miss-you"), (21 * DAY, "last-word")]
    assert details(bob, "updated") == ["tag dormant"]
    assert runs["ada", "skipped"].reason == "re-entry: not within P90D of the last entry"
    assert len(outcomes) == 3


async def test_welcome_drip_sends_now_after_two_days_and_after_two_weeks():
    runs = await run("welcome")

    assert sent(runs["ada"]) == [
        (timedelta(0), "welcome"),
        (2 * DAY, "getting-started"),
        (14 * DAY, "thanks"),
    ]
    assert sent(runs["bob"]) == [
        (timedelta(0), "welcome"),
        (2 * DAY, "getting-started"),
        (14 * DAY, "first-order-offer"),
    ]
    assert details(runs["ada"], "branched") == ["case 1 -> thanks"]
    assert details(runs["bob"], "branched") == ["default -> first-order-offer"]


async def test_birthday_gift_goes_out_at_nine_local_on_the_birthday_and_loops():
    runs = await run("birthday")
    ada, bob, cleo = runs["ada"], runs["bob"], runs["cleo"]

    # The clock starts on 1 January 00:00 UTC: Paris is UTC+1 and New York UTC-5 in winter.
    assert ada.started.astimezone(UTC).timetuple()[1:5] == (1, 1, 0, 0)
    assert sent(ada) == [(44 * DAY + 8 * HOUR, "gift")]
    assert details(ada, "event") and at(ada, "event") == [(45 * DAY, "used?")]
    assert sent(bob) == [(19 * DAY + 14 * HOUR, "gift"), (22 * DAY + 14 * HOUR, "reminder")]
    for outcome, birthday in ((ada, (2, 14, 8)), (bob, (1, 20, 14))):
        assert outcome.status == "running"
        assert outcome.trace[-1].step == "until-birthday"
        next_year = datetime(ada.started.year + 1, *birthday, tzinfo=UTC)
        assert f"until {next_year:%Y-%m-%d %H:%M} UTC" in (outcome.waiting_for or "")
    assert cleo.status == "completed" and cleo.reason == "no birthday on file"
    assert sent(cleo) == []


async def test_first_purchase_feedback_counts_from_delivery_and_only_once():
    outcomes = await simulate(
        EXAMPLES / "first-purchase-feedback.yaml",
        load_timeline(EXAMPLES / "timelines" / "first-purchase-feedback.yaml"),
    )
    runs = {(o.contact_id, o.status): o for o in outcomes}

    ada = runs["ada", "completed"]
    assert sent(ada) == [(5 * DAY, "ask-review"), (6 * DAY, "thank-you")]
    cleo = runs["cleo", "completed"]
    assert sent(cleo) == [(4 * DAY, "ask-review"), (11 * DAY, "ask-again")]
    bob = runs["bob", "completed"]
    assert sent(bob) == [] and bob.reason == "no delivery confirmed in 14 days"
    assert runs["bob", "skipped"].reason == "re-entry: never (entered before)"
    assert len(outcomes) == 4


async def test_win_back_after_sixty_days_without_a_purchase():
    runs = await run("win-back")
    ada, bob = runs["ada"], runs["bob"]

    # Ada's purchase on day 30 starts the count again: 60 days from then.
    assert at(ada, "event") == [(30 * DAY, "sixty-quiet-days?")]
    assert sent(ada) == [(90 * DAY, "miss-you"), (104 * DAY, "last-call")]
    assert details(ada, "updated") == ["tag lapsed"] and at(ada, "updated")[0][0] == 118 * DAY
    assert sent(bob) == [(60 * DAY, "miss-you")]
    assert at(bob, "event") == [(65 * DAY, "back?")]
    assert details(bob, "updated") == ["tag won-back; untag lapsed"]
    assert ada.status == bob.status == "completed"


async def test_lead_scoring_hands_off_to_sales_when_the_score_reaches_fifty():
    runs = await run("lead-scoring")
    ada, bob, cleo = runs["ada"], runs["bob"], runs["cleo"]

    assert details(ada, "updated") == [
        "tag lead; lead +10",
        "lead +20",
        "lead +20",
        "set lifecycle_stage; tag sales-qualified",
    ]
    assert sent(ada)[-1] == (1 * DAY, "sales-intro") and ada.reason == "handed to sales"
    assert details(bob, "branched") == ["default -> pricing-visit?"] * 2
    assert bob.reason == "score below 50 after 14 quiet days"
    assert at(bob, "completed") == [(22 * DAY, None)]
    assert "sales-intro" not in [step for _, step in sent(bob)]
    assert details(cleo, "branched") == ["default -> pricing-visit?", "case 1 -> sales-qualified"]
    assert sent(cleo)[-1] == (10 * DAY, "sales-intro") and cleo.reason == "handed to sales"


async def test_subject_line_test_splits_sticky_with_a_holdout():
    runs = await run("trial-subject-test")
    variants = {contact: details(o, "variant")[0] for contact, o in runs.items()}

    # The variant hashes (journey, step, contact, entry event id): fixed for this timeline.
    assert variants == {
        "ada": "plain",
        "bob": "plain",
        "cleo": "holdout",
        "dan": "holdout",
        "eve": "plain",
        "fay": "urgent",
        "gus": "plain",
        "hal": "urgent",
        "ivy": "plain",
        "jon": "urgent",
    }
    for contact, outcome in runs.items():
        template = {"plain": "upgrade-plain", "urgent": "upgrade-urgent"}.get(variants[contact])
        assert sent(outcome) == ([(7 * DAY, template)] if template else [])
        if template is None:
            assert outcome.reason == "holdout"
    assert runs["ada"].reason == "opened"
    assert runs["bob"].status == "converted"
    assert runs["eve"].reason == "not opened" and at(runs["eve"], "completed")[0][0] == 14 * DAY

"""The example journeys: each is valid against the templates and journeys beside it, and each
runs its scripted timeline (examples/timelines/) on the real interpreter with the outcome its
header comment promises: when each message goes out, which branch, where each contact ends."""

from __future__ import annotations

import inspect
from datetime import UTC, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from temporal_journeys.cli.commands import app
from temporal_journeys.cli.simulate import Outcome, load_broadcast, load_timeline, simulate
from temporal_journeys.journeys.rendering import render
from temporal_journeys.journeys.validation import load_document, parse_journey
from temporal_journeys.store import templates as templates_store

EXAMPLES = Path(__file__).parents[1] / "examples"
JOURNEY_FILES = sorted(EXAMPLES.glob("*.yaml"))
TEMPLATES = {path.stem: yaml.safe_load(path.read_text()) for path in EXAMPLES.glob("templates/*")}
KEYS = [load_document(path.read_text())["key"] for path in JOURNEY_FILES]
BROADCAST_FILES = sorted(EXAMPLES.glob("broadcasts/*.yaml"))
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
    used |= {load_broadcast(path).template for path in BROADCAST_FILES}
    assert used == set(TEMPLATES), "a template no example sends, or a send with no template"
    fields = set(inspect.signature(templates_store.put).parameters) - {"session", "key"}
    context = {
        "contact": {"first_name": "Ada"},
        "event": {"item": "shoes"},
        "data": {"code": "CODE1", "headline": "New running shoes"},
        "message": {"id": "msg_1"},
    }
    for key, template in TEMPLATES.items():
        assert set(template) <= fields, f"{key}: {set(template) - fields}"
        assert template["channel"] in ("email", "sms", "push", "whatsapp", "webhook")
        rendered = render(
            template.get("subject"), template.get("html"), template.get("text"), context
        )
        assert rendered.text and "{{" not in rendered.text, key
        if template["channel"] == "email":
            assert rendered.subject, f"{key}: an email needs a subject"
        if template["channel"] == "webhook":
            assert template.get("url"), f"{key}: a webhook template needs a url"
        if template["channel"] == "whatsapp":
            # Outside the 24-hour window only a content template may go.
            assert template.get("provider_template_id", "").startswith("HX"), key


@pytest.mark.parametrize("path", BROADCAST_FILES, ids=lambda p: p.stem)
def test_example_broadcast_names_a_segment_template_and_topic_beside_it(path: Path):
    body = load_broadcast(path)
    assert load_document(path.read_text())["key"] == path.stem
    assert (EXAMPLES / "segments" / f"{body.segment}.yaml").exists()
    assert body.template in TEMPLATES
    assert body.topic is None or (EXAMPLES / "topics" / f"{body.topic}.yaml").exists()
    assert (EXAMPLES / "timelines" / f"{path.stem}.yaml").exists(), "no timeline"


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
    assert all(runs[c].status == "completed" for c in ("ada", "bob", "cleo", "wei", "dan", "eve"))

    # Push opened: the ladder stops at its first rung.
    assert [step for _, step in sent(runs["ada"])] == ["offer-push"]
    assert details(runs["ada"], "updated") == ["set preferred_channel; tag channel-push"]
    # No open in 2 days: SMS, answered.
    bob = runs["bob"]
    assert [step for _, step in sent(bob)] == ["offer-push", "offer-sms"]
    assert at(bob, "timeout") == [(2 * DAY, "push-opened?")]
    assert details(bob, "updated") == ["set preferred_channel; tag channel-sms"]
    # No app: the push is skipped with the reason; WhatsApp two days after the SMS, read.
    cleo = runs["cleo"]
    assert details(cleo, "skipped") == ["no push device registered"]
    assert sent(cleo) == [(2 * DAY, "offer-sms"), (4 * DAY, "offer-whatsapp")]
    assert details(cleo, "updated") == ["set preferred_channel; tag channel-whatsapp"]
    # A WeChat user gets the gateway instead of WhatsApp; its read receipt counts.
    wei = runs["wei"]
    assert details(wei, "branched") == ["case 1 -> offer-wechat"]
    assert sent(wei)[-1] == (4 * DAY, "offer-wechat")
    assert details(wei, "updated") == ["set preferred_channel; tag channel-wechat"]

    dan = runs["dan"]
    assert [step for _, step in sent(dan)] == ["offer-push", "offer-sms", "offer-whatsapp"]
    assert at(dan, "timeout")[-1] == (6 * DAY, "whatsapp-read?")
    assert details(dan, "updated") == ["tag churned"]
    assert at(dan, "handed_off") == [(6 * DAY, "hand-off")]
    reactivation = runs["dan/re-activation"]
    assert sent(reactivation) == [(13 * DAY, "miss-you")]
    assert reactivation.status == "converted"

    # 10:00 UTC on 7 January is 02:00 in Los Angeles: the SMS waits for 08:00 there.
    eve = runs["eve"]
    assert at(eve, "deferred") == [(2 * DAY, "offer-sms")]
    assert sent(eve)[-1] == (2 * DAY + 6 * HOUR, "offer-sms")
    assert details(eve, "updated") == ["set preferred_channel; tag channel-sms"]

    fay = runs["fay"]
    assert fay.status == "exited" and fay.reason == "exit event sms.unsubscribed"
    assert at(fay, "exited") == [(2 * DAY + HOUR, "sms-answered?")]
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


async def test_birthday_gift_goes_out_at_nine_local_on_the_birthday_to_contacts_on_file():
    # The journey enters by its date schedule (date_attribute): the contacts were on file before
    # it was published and sent nothing; each birthday is an entry keyed by its date.
    runs = await run("birthday")
    ada, bob = runs["ada"], runs["bob"]

    # The clock starts on 1 January 00:00 UTC: Paris is UTC+1 and New York UTC-5 in winter.
    assert ada.started.astimezone(UTC).timetuple()[1:5] == (1, 1, 0, 0)
    assert sent(ada) == [(44 * DAY + 8 * HOUR, "gift")]
    assert at(ada, "event") == [(45 * DAY, "used?")]
    assert sent(bob) == [(19 * DAY + 14 * HOUR, "gift"), (22 * DAY + 14 * HOUR, "reminder")]
    for outcome in (ada, bob):
        assert outcome.status == "completed" and outcome.reason == "birthday celebrated"
    assert "cleo" not in runs  # no birthday on file: never enters


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


async def test_win_back_enters_contacts_as_the_segment_takes_them_in():
    # trigger: {segment: no-purchase-90d}; the segment's hourly refresh takes contacts in 90
    # days after their last order (the history before the start counts), a purchase takes
    # them out at once.
    runs = await run("win-back")
    ada, bob = runs["ada"], runs["bob"]

    # Ada's last order is on day 30: in the segment at the first refresh after day 120.
    assert sent(ada) == [(120 * DAY + HOUR, "miss-you"), (134 * DAY + HOUR, "last-call")]
    assert details(ada, "updated") == ["tag lapsed"]
    assert at(ada, "updated") == [(148 * DAY + HOUR, "lapsed")]
    # Bob's last order was 20 days before the start: the offer on day 70, bought on day 75.
    assert sent(bob) == [(70 * DAY + HOUR, "miss-you")]
    assert at(bob, "event") == [(75 * DAY, "back?")]
    assert details(bob, "updated") == ["tag won-back; untag lapsed"]
    assert ada.status == bob.status == "completed"
    # Cleo was in the segment before the journey was published; Dan never bought anything.
    assert set(runs) == {"ada", "bob"}


async def test_weekly_newsletter_reaches_subscribers_at_nine_local_and_skips_leavers():
    outcomes = await simulate(
        EXAMPLES / "broadcasts" / "weekly-newsletter.yaml",
        load_timeline(EXAMPLES / "timelines" / "weekly-newsletter.yaml"),
    )
    issues: dict[str, list[tuple[str, timedelta, str | None]]] = {}
    for o in outcomes:
        assert o.journey == "broadcast weekly-newsletter"
        [entry] = o.trace
        offset = timedelta(minutes=round((entry.at - o.started).total_seconds() / 60))
        issues.setdefault(o.contact_id, []).append((o.status, offset, entry.detail))

    # The clock starts on Monday 4 January at 05:00 UTC: 09:00 in Paris is 08:00 UTC, in
    # New York 14:00 UTC, in Tokyo (09:00 already past) 00:00 UTC the next day.
    assert issues == {
        "ada": [("sent", 3 * HOUR, None), ("sent", 7 * DAY + 3 * HOUR, None)],
        "bob": [
            ("sent", 9 * HOUR, None),
            ("skipped", 7 * DAY + 9 * HOUR, "unsubscribed from topic 'newsletter'"),
        ],
        "dan": [("sent", 19 * HOUR, None), ("sent", 7 * DAY + 19 * HOUR, None)],
    }  # cleo has no email address: not in the segment


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

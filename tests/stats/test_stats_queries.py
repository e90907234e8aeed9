"""The grouped statements behind the stats, on both backends (SQLite is the embedded default):
the message-to-run join, receipts counted once per message, the time range and skip classes."""

from __future__ import annotations

from datetime import UTC, datetime

from temporal_journeys.api.services.stats import journey_stats
from temporal_journeys.store import deliveries as deliveries_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message
from tests.support import harness as h
from tests.support import stats_rows as rows

EARLY = datetime(2026, 11, 1, 9, tzinfo=UTC)
LATE = datetime(2026, 11, 10, 9, tzinfo=UTC)


def webhook(db: Database, message: rows.Sent, status: str, key: str) -> None:
    """What the delivery service does with one provider event: a receipt, the status forward."""
    with db.transaction() as session:
        assert deliveries_store.claim(session, key, message.message_id, status)
        row = session.get(Message, message.message_id)
        assert row is not None
        messages_store.advance(row, status)


def split_journey(db: Database, key: str) -> None:
    h.publish(
        db,
        {
            "key": key,
            "name": key,
            "trigger": {"event": "go"},
            "steps": [
                {
                    "id": "pick",
                    "split": {
                        "variants": [
                            {"name": "a", "weight": 1, "next": "send-a"},
                            {"name": "b", "weight": 1, "next": "send-b"},
                        ]
                    },
                },
                {"id": "send-a", "send": {"channel": "email", "template": "t"}, "next": "end"},
                {"id": "send-b", "send": {"channel": "email", "template": "t"}},
                {"id": "end", "exit": {}},
            ],
        },
    )


def test_figures_per_step_and_variant_on_each_backend(db: Database):
    split_journey(db, "j")
    a = [rows.sent(db, "j", "send-a", "a", at=EARLY) for _ in range(3)]
    b = [rows.sent(db, "j", "send-b", "b", at=LATE, converted=True) for _ in range(2)]
    rows.sent(db, "j", "send-a", "a", status="skipped", error="suppressed: bounced", at=EARLY)
    rows.sent(db, "j", "send-a", "a", test=True, at=EARLY)
    rows.sent(db, "other", "send-a", "a", at=EARLY)
    webhook(db, a[0], "delivered", "1")
    webhook(db, a[0], "opened", "2")
    webhook(db, a[0], "opened", "3")  # a second open of the same message
    webhook(db, a[1], "clicked", "4")
    webhook(db, a[1], "opened", "5")  # after the click: the status stays, the receipt counts
    webhook(db, b[0], "bounced", "6")

    with db.transaction() as session:
        [version] = journey_stats(session, "j")
        [early] = journey_stats(session, "j", since=EARLY, until=LATE)
        [late] = journey_stats(session, "j", since=LATE)

    steps = {s.step: s for s in version.steps}
    sent_a = steps["send-a"].messages
    assert sent_a is not None
    assert (sent_a.sent, sent_a.delivered, sent_a.opened, sent_a.clicked) == (3, 2, 2, 1)
    assert sent_a.skipped_by_reason == {"suppressed": 1}
    sent_b = steps["send-b"].messages
    assert sent_b is not None and (sent_b.sent, sent_b.bounced, sent_b.delivered) == (2, 1, 0)
    assert [v.variant for v in steps["send-a"].variants] == ["a"]
    assert steps["send-b"].variants[0].converted == 2
    variants = {v.variant: v for v in version.variants}
    assert variants["b"].conversion_rate == 1.0 and variants["a"].conversion_rate == 0.0
    assert variants["a"].messages is not None and variants["a"].messages.opened == 2
    opened = {t.rate: t for t in variants["b"].tests}["opened"]
    assert (opened.successes, opened.trials, opened.control_trials) == (0, 2, 3)
    assert early.messages is not None and late.messages is not None
    assert (early.messages.sent, early.messages.skipped, late.messages.sent) == (3, 1, 2)
    # Runs by when they started: the early ones (a test send's run among them), the late two.
    assert early.entered == 5 and late.entered == 2


def test_a_journey_without_a_split_counts_its_messages_without_variants(db: Database):
    h.publish(
        db,
        {
            "key": "plain",
            "name": "plain",
            "trigger": {"event": "go"},
            "steps": [{"id": "hello", "send": {"channel": "email", "template": "t"}}],
        },
    )
    first, _ = (rows.sent(db, "plain", "hello", None) for _ in range(2))
    rows.sent(db, "plain", "hello", None, status="skipped", error="no email address")
    webhook(db, first, "opened", "1")

    with db.transaction() as session:
        [version] = journey_stats(session, "plain")

    [step] = version.steps
    assert step.messages is not None and step.variants == [] and version.variants == []
    assert (step.messages.sent, step.messages.delivered, step.messages.opened) == (2, 1, 1)
    assert step.messages.skipped_by_reason == {"no_address": 1}

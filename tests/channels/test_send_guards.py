"""The send guards on their own: each rule, and the order of the policy, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from temporal_journeys.activities import send_guards
from temporal_journeys.activities.send_guards import SendContext, Verdict, evaluate, parse_window
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import suppressions
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Message

# 23:30 in Berlin (UTC+1 in winter).
NOW = datetime(2030, 1, 15, 22, 30, tzinfo=UTC)


def settings(**values: Any) -> Settings:
    return Settings(**{"database_url": "sqlite://", "sms_quiet_hours": "", **values})


def contact(session: Session, **fields: Any) -> Contact:
    row = Contact(
        id="guarded",
        email="ada@example.com",
        phone="+4915112345678",
        timezone="Europe/Berlin",
        traits={},
        tags=[],
        scores={},
        unsubscribed=[],
    )
    for name, value in fields.items():
        setattr(row, name, value)
    session.add(row)
    session.flush()
    return row


def sent(
    session: Session, number: int, channel: str, at: datetime | None, status: str = "sent"
) -> None:
    row = Message(
        id=f"m{number}",
        idempotency_key=f"k{number}",
        contact_id="guarded",
        channel=channel,
        template="t",
        provider="console",
        status_history=[],
        sent_at=at,
    )
    messages_store.add_status(row, status)
    session.add(row)
    session.flush()


def check(session: Session, who: Contact, channel: str, config: Settings, **extra: Any):
    address = who.email if channel == "email" else who.phone
    return evaluate(
        SendContext(
            session=session,
            settings=config,
            contact=who,
            channel=channel,
            address=address,
            message_id="this-one",
            now=NOW,
            **extra,
        )
    )


def test_quiet_hours_windows_parse_and_may_be_off():
    assert parse_window("21:00-08:00") == (
        datetime(1, 1, 1, 21).time(),
        datetime(1, 1, 1, 8).time(),
    )
    assert parse_window(None) is None
    assert parse_window("") is None


def test_sms_in_the_contacts_quiet_hours_is_deferred_to_the_local_end(db: Database):
    with db.transaction() as session:
        who = contact(session)
        verdict = check(session, who, "sms", settings(sms_quiet_hours="21:00-08:00"))
    # 08:00 in Berlin the next morning is 07:00 UTC.
    assert verdict == Verdict(
        "deferred",
        "quiet hours 21:00-08:00 (Europe/Berlin) for sms",
        datetime(2030, 1, 16, 7, 0, tzinfo=UTC),
    )


def test_quiet_hours_of_one_channel_leave_the_other_alone(db: Database):
    with db.transaction() as session:
        who = contact(session)
        assert check(session, who, "email", settings(sms_quiet_hours="21:00-08:00")) is None


def test_a_skip_wins_over_quiet_hours(db: Database):
    with db.transaction() as session:
        who = contact(session, unsubscribed=["sms"])
        verdict = check(session, who, "sms", settings(sms_quiet_hours="21:00-08:00"))
    assert verdict == Verdict("skipped", "unsubscribed from sms")


def test_a_suppressed_address_is_skipped(db: Database):
    with db.transaction() as session:
        who = contact(session)
        suppressions.add(session, "email", "ada@example.com", "bounce")
        assert check(session, who, "email", settings()) == Verdict("skipped", "suppressed: bounce")


@pytest.mark.parametrize(
    ("fields", "channel", "reason"),
    [
        ({"email": None}, "email", "no email address"),
        ({"email": "ada@"}, "email", "invalid email address 'ada@'"),
        ({"phone": None}, "sms", "no phone number"),
        ({"phone": "0151 1234"}, "sms", "invalid phone number '0151 1234' (E.164)"),
    ],
)
def test_address_problems_are_skipped_with_the_reason(
    db: Database, fields: dict[str, Any], channel: str, reason: str
):
    with db.transaction() as session:
        who = contact(session, **fields)
        assert check(session, who, channel, settings()) == Verdict("skipped", reason)


def test_a_cap_counts_what_went_out_in_the_last_24_hours(db: Database):
    config = settings(email_daily_cap=2)
    with db.transaction() as session:
        who = contact(session)
        sent(session, 1, "email", NOW - timedelta(hours=24))  # just out of the window
        # Held back (not yet through the guards, or deferred by them): no ``sent_at``.
        sent(session, 2, "email", None, "pending")
        sent(session, 3, "email", None, "deferred")
        sent(session, 4, "email", NOW - timedelta(hours=18), "skipped")
        sent(session, 5, "email", NOW - timedelta(hours=17), "failed")
        sent(session, 6, "sms", NOW - timedelta(hours=16))
        sent(session, 7, "email", NOW - timedelta(hours=10), "unknown")
        assert check(session, who, "email", config) is None  # one counted: m7
        sent(session, 8, "email", NOW - timedelta(hours=2), "delivered")
        verdict = check(session, who, "email", config)
    assert verdict == Verdict(
        "deferred", "frequency cap: 2 email in 24 h (cap 2)", NOW + timedelta(hours=14)
    )


def test_a_cap_defers_until_enough_sends_are_a_day_old(db: Database):
    config = settings(sms_daily_cap=2)
    with db.transaction() as session:
        who = contact(session)
        for number, hours in enumerate((23, 12, 1)):
            sent(session, number, "sms", NOW - timedelta(hours=hours))
        verdict = check(session, who, "sms", config)
    # Three counted under a cap of two: the second oldest must age out first.
    assert verdict is not None and verdict.until == NOW + timedelta(hours=12)


@pytest.mark.parametrize("status", ["pending", "deferred"])
def test_a_released_message_waiting_for_its_provider_call_is_counted(db: Database, status: str):
    """Through the guards (``sent_at`` set) but its call not begun: a second send to the
    contact at that moment must count it, or both could pass the cap."""
    config = settings(email_daily_cap=1)
    with db.transaction() as session:
        who = contact(session)
        sent(session, 1, "email", NOW - timedelta(minutes=1), status)
        verdict = check(session, who, "email", config)
    assert verdict == Verdict(
        "deferred",
        "frequency cap: 1 email in 24 h (cap 1)",
        NOW - timedelta(minutes=1) + timedelta(days=1),
    )


def test_a_capped_send_that_says_skip_is_skipped(db: Database):
    config = settings(email_daily_cap=1)
    with db.transaction() as session:
        who = contact(session)
        sent(session, 1, "email", NOW - timedelta(hours=1), "sending")
        verdict = check(session, who, "email", config, if_capped="skip")
    assert verdict == Verdict("skipped", "frequency cap: 1 email in 24 h (cap 1)")


def test_the_policy_order_skips_before_it_defers():
    names = [rule.name for rule in send_guards.POLICY]
    assert names == [
        "address",
        "unsubscribed",
        "topic",
        "suppression",
        "quiet_hours",
        "frequency_cap",
    ]

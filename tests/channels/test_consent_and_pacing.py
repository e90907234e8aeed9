"""Guards before a send: bad addresses, suppressions and unsubscribes skip it with the reason;
channel quiet hours and frequency caps hold it on a visible timer (or skip it if asked)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.timing import next_local_time
from temporal_journeys.store import suppressions
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import channels
from tests.support import harness as h
from tests.support.channels import channel_settings, channel_worker
from tests.support.fake_providers import FakeProviders


async def test_an_invalid_phone_number_is_skipped_with_the_reason(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-sms", "sms", text="Hello")
    contact = h.contact(engine_db, phone="555-0100")

    result, view = await channels.run_send(channel_client, engine_db, contact, "sms", "ch-sms")

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("send", "skipped")]
    assert channels.detail(view, "skipped") == "invalid phone number '555-0100' (E.164)"
    assert fake_providers.of("twilio") == []
    [message] = h.messages(engine_db, contact)
    assert (message.status, message.error) == ("skipped", "invalid phone number '555-0100' (E.164)")


async def test_an_sms_to_a_suppressed_number_is_skipped_with_the_reason(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-sms", "sms", text="Hello")
    contact = h.contact(engine_db, phone="+15551230777")
    with engine_db.transaction() as session:
        suppressions.add(session, "sms", "+15551230777", "stop")

    _, view = await channels.run_send(channel_client, engine_db, contact, "sms", "ch-sms")

    assert channels.step_kinds(view) == [("send", "skipped")]
    assert channels.detail(view, "skipped") == "suppressed: stop"
    assert fake_providers.of("twilio") == []


async def test_an_email_to_a_contact_who_unsubscribed_is_skipped_with_the_reason(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-mail", subject="News", text="News")
    contact = h.contact(engine_db)
    with engine_db.transaction() as session:
        session.get(Contact, contact).unsubscribed = ["email"]  # type: ignore[union-attr]

    _, view = await channels.run_send(channel_client, engine_db, contact, "email", "ch-mail")

    assert channels.step_kinds(view) == [("send", "skipped")]
    assert channels.detail(view, "skipped") == "unsubscribed from email"
    assert fake_providers.of("sendgrid") == []


def zone_where_it_is_evening(now: datetime) -> str:
    """An Etc/GMT zone whose local hour is 22 at ``now`` (their signs are inverted)."""
    offset = (22 - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"


async def test_an_sms_in_default_quiet_hours_waits_for_0800_local(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers: FakeProviders,
):
    h.template(engine_db, "ch-sms", "sms", text="Good morning")
    now = await time_env.get_current_time()
    zone = zone_where_it_is_evening(now)
    contact = h.contact(engine_db, phone="+15551230800", timezone=zone)
    settings = channel_settings(postgres_url, fake_providers, sms_quiet_hours="21:00-08:00")

    async with channel_worker(time_env, engine_db, settings) as queue:
        result, view = await channels.run_send(
            client, engine_db, contact, "sms", "ch-sms", queue=queue
        )

    assert channels.step_kinds(view) == [("send", "deferred"), ("send", "sent")]
    assert "quiet hours 21:00-08:00" in channels.detail(view, "deferred")
    eight = next_local_time(h.at(view, "deferred")[0].at, zone, time(8))
    [sent] = h.at(view, "sent")
    assert h.close(sent.at, eight), (sent.at, eight)
    assert 9 * 3600 <= (sent.at - h.at(view, "deferred")[0].at).total_seconds() <= 11 * 3600
    assert len(fake_providers.accepted("twilio")) == 1
    [message] = h.messages(engine_db, contact)
    statuses = [entry["status"] for entry in message.status_history]
    assert statuses == ["pending", "deferred", "sending", "sent"]


def three_emails(template: str, if_capped: str = "defer") -> list[dict]:
    send = {"channel": "email", "template": template}
    return [
        {"id": "first", "send": send},
        {"id": "second", "send": send},
        {"id": "third", "send": {**send, "if_capped": if_capped}},
    ]


async def test_a_third_email_in_a_day_under_a_cap_of_2_waits_for_the_next_day(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers: FakeProviders,
):
    h.template(engine_db, "ch-capped", subject="Again", text="Again")
    contact = h.contact(engine_db)
    settings = channel_settings(postgres_url, fake_providers, email_daily_cap=2)

    async with channel_worker(time_env, engine_db, settings) as queue:
        result, view = await channels.run_journey(
            client, engine_db, contact, three_emails("ch-capped"), queue=queue
        )

    assert result.status == "completed"
    assert channels.step_kinds(view) == [
        ("first", "sent"),
        ("second", "sent"),
        ("third", "deferred"),
        ("third", "sent"),
    ]
    assert "frequency cap: 2 email in 24 h (cap 2)" in channels.detail(view, "deferred")
    first, _, third = h.at(view, "sent")
    assert h.close(third.at - first.at, timedelta(days=1)), third.at - first.at
    assert len(fake_providers.accepted("sendgrid")) == 3
    rows = h.messages(engine_db, contact)
    assert [row.status for row in rows] == ["sent", "sent", "sent"]
    # The last send recorded the end, with the entries of its deferral before it.
    assert h.assert_recorded(engine_db, view).status == "completed"


async def test_a_capped_step_that_says_skip_is_skipped(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers: FakeProviders,
):
    h.template(engine_db, "ch-capped", subject="Again", text="Again")
    contact = h.contact(engine_db)
    settings = channel_settings(postgres_url, fake_providers, email_daily_cap=2)

    async with channel_worker(time_env, engine_db, settings) as queue:
        _, view = await channels.run_journey(
            client, engine_db, contact, three_emails("ch-capped", "skip"), queue=queue
        )

    assert channels.step_kinds(view) == [
        ("first", "sent"),
        ("second", "sent"),
        ("third", "skipped"),
    ]
    assert channels.detail(view, "skipped") == "frequency cap: 2 email in 24 h (cap 2)"
    assert len(fake_providers.accepted("sendgrid")) == 2

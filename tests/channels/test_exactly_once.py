"""Exactly-once sends: a provider that did not take the message is called again; one that may
have taken it is never called twice for the same message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from temporal_journeys.activities.sends import SendActivities
from temporal_journeys.plugin import default_providers
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message
from temporal_journeys.workflows.activity_types import SendMessageInput
from tests.support import channels
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.channels import channel_settings, channel_worker
from tests.support.fake_providers import Answer, FakeProviders


def statuses(message: Message) -> list[str]:
    return [entry["status"] for entry in message.status_history]


async def test_503_twice_then_202_makes_one_row_and_one_accepted_email(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-once", subject="Once", text="Only once")
    contact = h.contact(engine_db)
    fake_providers.script("sendgrid", Answer(503), Answer(503))

    result, view = await channels.run_send(channel_client, engine_db, contact, "email", "ch-once")

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("send", "sent")]
    assert len(fake_providers.of("sendgrid")) == 3
    assert len(fake_providers.accepted("sendgrid")) == 1
    [message] = h.messages(engine_db, contact)
    assert message.status == "sent"
    # Each refusal set the row back, so the retry was allowed to call again.
    assert statuses(message) == [
        "pending", "sending", "pending", "sending", "pending", "sending", "sent"
    ]  # fmt: skip


async def test_a_timeout_after_the_provider_accepted_is_never_sent_again(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-slow", subject="Slow", text="Slow answer")
    contact = h.contact(engine_db)
    # Taken by the provider, answered after the client's 1 s timeout.
    fake_providers.script("sendgrid", Answer(202, headers={"X-Message-Id": "late"}, delay=3))

    result, view = await channels.run_send(channel_client, engine_db, contact, "email", "ch-slow")

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("send", "sent")]
    assert len(fake_providers.of("sendgrid")) == 1
    assert len(fake_providers.accepted("sendgrid")) == 1
    [message] = h.messages(engine_db, contact)
    assert message.status == "unknown"
    assert (message.error or "").startswith("outcome unknown")
    assert statuses(message) == ["pending", "sending", "unknown"]


async def test_a_500_is_an_unknown_outcome_and_not_retried(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-500", subject="500", text="Server error")
    contact = h.contact(engine_db, phone="+15551230500")
    h.template(engine_db, "ch-500-sms", "sms", text="Server error")
    fake_providers.script(
        "twilio", Answer(500, {"code": 20500, "message": "Internal", "status": 500}, accept=True)
    )

    result, view = await channels.run_send(channel_client, engine_db, contact, "sms", "ch-500-sms")

    assert channels.step_kinds(view) == [("send", "sent")]
    assert len(fake_providers.of("twilio")) == 1
    [message] = h.messages(engine_db, contact)
    assert message.status == "unknown"


async def test_an_attempt_that_died_mid_call_is_not_repeated(
    engine_db: Database, postgres_url: str, fake_providers: FakeProviders
):
    """A worker that crashed after committing ``sending`` leaves the row there; the retry
    must treat the outcome as unknown rather than call SendGrid a second time."""
    h.template(engine_db, "ch-crash", subject="Crash", text="Crashed")
    contact = h.contact(engine_db)
    settings = channel_settings(postgres_url, fake_providers)
    sends = SendActivities(engine_db, default_providers(settings), settings)
    request = SendMessageInput(
        idempotency_key=f"journey/crash/{contact}/send",
        message_id=h.unique("msg"),
        contact_id=contact,
        journey_key="crash",
        version=1,
        step_id="send",
        workflow_id=f"journey/crash/{contact}",
        channel="email",
        template="ch-crash",
    )
    with engine_db.transaction() as session:
        row = Message(
            id=request.message_id,
            idempotency_key=request.idempotency_key,
            contact_id=contact,
            channel="email",
            template="ch-crash",
            provider="sendgrid",
            status_history=[],
        )
        session.add(row)
        messages_store.add_status(row, "pending")
        messages_store.add_status(row, "sending")

    result = await ActivityEnvironment().run(sends.send_message, request)

    assert result.status == "sent"
    assert (result.reason or "").startswith("outcome unknown")
    assert fake_providers.of("sendgrid") == []
    [message] = h.messages(engine_db, contact)
    assert statuses(message) == ["pending", "sending", "unknown"]


async def test_a_retried_console_send_records_once(engine_db: Database, postgres_url: str):
    """The console provider repeats an interrupted attempt: nothing left the machine."""
    h.template(engine_db, "ch-console", subject="Console", text="Console")
    contact = h.contact(engine_db)
    settings = channel_settings(postgres_url, FakeProviders(), sendgrid_api_key=None)
    sends = SendActivities(engine_db, default_providers(settings), settings)
    request = SendMessageInput(
        idempotency_key=f"journey/console/{contact}/send",
        message_id=h.unique("msg"),
        contact_id=contact,
        journey_key="console",
        version=1,
        step_id="send",
        workflow_id=f"journey/console/{contact}",
        channel="email",
        template="ch-console",
        now=datetime(2030, 5, 1, 9, 30, tzinfo=UTC),
    )

    env = ActivityEnvironment()
    first = await env.run(sends.send_message, request)
    second = await env.run(sends.send_message, request)

    assert first.status == second.status == "sent"
    [message] = h.messages(engine_db, contact)
    assert message.provider == "console"
    assert statuses(message) == ["pending", "sending", "sent"]
    # On the workflow's clock, which frequency caps count by.
    assert message.sent_at == request.now


async def test_two_journeys_sending_at_once_cannot_both_pass_a_cap(
    engine_db: Database, postgres_url: str, fake_providers: FakeProviders
):
    """The contact row is locked while the guards run: the second send counts the first."""
    h.template(engine_db, "ch-race", subject="Race", text="Race")
    contact = h.contact(engine_db)
    settings = channel_settings(postgres_url, fake_providers, email_daily_cap=1)
    sends = SendActivities(engine_db, default_providers(settings), settings)
    now = datetime.now(UTC)
    requests = [
        SendMessageInput(
            idempotency_key=f"journey/race-{n}/{contact}/send",
            message_id=h.unique("msg"),
            contact_id=contact,
            journey_key=f"race-{n}",
            version=1,
            step_id="send",
            workflow_id=f"journey/race-{n}/{contact}",
            channel="email",
            template="ch-race",
            now=now,
        )
        for n in range(2)
    ]

    results = await asyncio.gather(
        *(ActivityEnvironment().run(sends.send_message, request) for request in requests)
    )

    assert sorted(result.status for result in results) == ["deferred", "sent"]
    [deferred] = [result for result in results if result.status == "deferred"]
    assert deferred.until == now + timedelta(days=1)
    assert len(fake_providers.accepted("sendgrid")) == 1


async def test_with_a_resend_window_an_unconfirmed_email_is_sent_again_after_it(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers: FakeProviders,
):
    """Opting in to at-least-once: nothing confirmed the slow send within 10 minutes."""
    h.template(engine_db, "ch-resend", subject="Again", text="Again")
    contact = h.contact(engine_db)
    fake_providers.script("sendgrid", Answer(202, headers={"X-Message-Id": "late"}, delay=3))
    settings = channel_settings(postgres_url, fake_providers, resend_unconfirmed_after_seconds=600)

    async with channel_worker(time_env, engine_db, settings) as queue:
        _, view = await channels.run_send(
            client, engine_db, contact, "email", "ch-resend", queue=queue
        )

    assert len(fake_providers.accepted("sendgrid")) == 2
    [sent] = h.offsets(view, "sent")
    assert sent >= timedelta(seconds=595), sent
    [message] = h.messages(engine_db, contact)
    assert statuses(message) == ["pending", "sending", "unknown", "sending", "sent"]


async def test_with_a_resend_window_a_confirmed_email_is_not_sent_again(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers: FakeProviders,
):
    h.template(engine_db, "ch-resend", subject="Again", text="Again")
    contact = h.contact(engine_db)
    fake_providers.script("sendgrid", Answer(202, headers={"X-Message-Id": "late"}, delay=3))
    settings = channel_settings(postgres_url, fake_providers, resend_unconfirmed_after_seconds=600)

    async with channel_worker(time_env, engine_db, settings) as queue:
        spec = channels.send_steps("email", "ch-resend")
        handle = await channels.start_journey(client, engine_db, contact, spec, queue=queue)

        def unknown() -> bool:
            rows = h.messages(engine_db, contact)
            return bool(rows) and rows[0].status == "unknown"

        # Time stands still until the result is awaited: the retry waits for us.
        await h.wait_until(unknown, "the slow send to be unknown")
        with engine_db.transaction() as session:
            [row] = session.scalars(select(Message).where(Message.contact_id == contact))
            messages_store.advance(row, "delivered", reason="sendgrid delivered")
        _, view = await h.finish(handle)

    assert channels.step_kinds(view) == [("send", "sent")]
    assert len(fake_providers.of("sendgrid")) == 1
    [message] = h.messages(engine_db, contact)
    assert message.status == "delivered"


def _request(contact: str, n: int) -> SendMessageInput:
    return SendMessageInput(
        idempotency_key=f"journey/slots-{n}/{contact}/send",
        message_id=h.unique("msg"),
        contact_id=contact,
        journey_key=f"slots-{n}",
        version=1,
        step_id="send",
        workflow_id=f"journey/slots-{n}/{contact}",
        channel="email",
        template="ch-slots",
    )


async def test_only_messages_whose_provider_call_is_under_way_are_marked_sending(
    engine_db: Database, postgres_url: str, fake_providers: FakeProviders
):
    """A send waiting for a free provider slot is not ``sending``: a crash while it waits
    must leave it to be sent by the retry, not ``unknown`` for good."""
    h.template(engine_db, "ch-slots", subject="Slots", text="Slots")
    contacts = [h.contact(engine_db) for _ in range(10)]
    fake_providers.script(
        "sendgrid",
        *[Answer(202, headers={"X-Message-Id": f"slow-{n}"}, delay=0.4) for n in range(10)],
    )
    settings = channel_settings(postgres_url, fake_providers, provider_concurrency=2)
    sends = SendActivities(engine_db, default_providers(settings), settings)
    ids = set()
    peak = 0

    def sending_now() -> int:
        with engine_db.transaction() as session:
            query = select(Message.status).where(Message.id.in_(ids))
            return sum(status == "sending" for status in session.scalars(query))

    requests = [_request(contact, n) for n, contact in enumerate(contacts)]
    ids.update(request.message_id for request in requests)
    running = asyncio.gather(
        *(ActivityEnvironment().run(sends.send_message, request) for request in requests)
    )
    while not running.done():
        peak = max(peak, await asyncio.to_thread(sending_now))
        await asyncio.sleep(0.02)
    results = await running

    assert [result.status for result in results] == ["sent"] * 10
    assert len(fake_providers.accepted("sendgrid")) == 10
    assert 1 <= peak <= 2, f"{peak} messages were sending at once with 2 provider slots"


async def test_with_sendgrids_webhook_configured_an_unconfirmed_email_is_sent_again_by_default(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers: FakeProviders,
):
    """No resend setting, but the worker knows SendGrid's signed webhook is on: a message
    nothing confirmed within the default window (120 s) is sent again."""
    h.template(engine_db, "ch-hooked", subject="Again", text="Again")
    contact = h.contact(engine_db)
    fake_providers.script("sendgrid", Answer(202, headers={"X-Message-Id": "late"}, delay=3))
    settings = channel_settings(
        postgres_url, fake_providers, sendgrid_webhook_public_key=sw.SendGridSigner().public_key_b64
    )

    async with channel_worker(time_env, engine_db, settings) as queue:
        _, view = await channels.run_send(
            client, engine_db, contact, "email", "ch-hooked", queue=queue
        )

    assert len(fake_providers.accepted("sendgrid")) == 2
    [sent] = h.offsets(view, "sent")
    assert sent >= timedelta(seconds=115), sent
    [message] = h.messages(engine_db, contact)
    assert statuses(message) == ["pending", "sending", "unknown", "sending", "sent"]


async def test_a_zero_resend_window_keeps_at_most_once_even_with_webhooks(
    channel_client: Client, engine_db: Database, postgres_url: str, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-slots", subject="Once", text="Once")
    contact = h.contact(engine_db)
    fake_providers.script("sendgrid", Answer(202, headers={"X-Message-Id": "late"}, delay=3))
    settings = channel_settings(
        postgres_url,
        fake_providers,
        sendgrid_webhook_public_key=sw.SendGridSigner().public_key_b64,
        resend_unconfirmed_after_seconds=0,
    )
    sends = SendActivities(engine_db, default_providers(settings), settings)

    result = await ActivityEnvironment().run(sends.send_message, _request(contact, 0))

    assert result.status == "sent" and (result.reason or "").startswith("outcome unknown")
    [message] = h.messages(engine_db, contact)
    assert statuses(message) == ["pending", "sending", "unknown"]

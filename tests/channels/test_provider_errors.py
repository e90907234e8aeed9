"""Permanent provider refusals follow on_failure; rate limits wait for the provider's reset."""

from __future__ import annotations

import time

from temporalio.client import Client

from temporal_journeys.store.db import Database
from tests.support import channels
from tests.support import harness as h
from tests.support.fake_providers import Answer, FakeProviders, sendgrid_error, twilio_error


async def test_sendgrid_400_follows_on_failure(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-400", subject="Bad", text="Bad request")
    contact = h.contact(engine_db)
    fake_providers.script("sendgrid", sendgrid_error(400, "The from address is not verified"))

    result, view = await channels.run_send(channel_client, engine_db, contact, "email", "ch-400")

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "sendgrid answered 400: The from address is not verified" in channels.detail(
        view, "failed"
    )
    assert len(fake_providers.of("sendgrid")) == 1  # permanent: never retried
    # Not sent, so the run itself recorded its end (after the fallback), not the send.
    assert h.assert_recorded(engine_db, view).status == "completed"
    [message] = h.messages(engine_db, contact)
    assert message.status == "failed"


async def test_twilio_21211_follows_on_failure(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-21211", "sms", text="Hello")
    contact = h.contact(engine_db, phone="+15005550001")
    fake_providers.script(
        "twilio", twilio_error(21211, "The 'To' number +15005550001 is not a valid phone number.")
    )

    result, view = await channels.run_send(channel_client, engine_db, contact, "sms", "ch-21211")

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "twilio error 21211" in channels.detail(view, "failed")
    assert len(fake_providers.of("twilio")) == 1
    [message] = h.messages(engine_db, contact)
    assert message.status == "failed"


async def test_sendgrid_429_retries_after_the_rate_limit_reset(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-429", subject="Busy", text="Rate limited")
    contact = h.contact(engine_db)
    reset = str(int(time.time()) + 600)  # epoch seconds, as SendGrid sends it
    fake_providers.script("sendgrid", Answer(429, headers={"X-RateLimit-Reset": reset}))

    result, view = await channels.run_send(channel_client, engine_db, contact, "email", "ch-429")

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [r.accepted for r in fake_providers.of("sendgrid")] == [False, True]
    # The retry came at the reset (about 10 minutes on), not after the usual 1 s backoff.
    [sent] = h.offsets(view, "sent")
    assert sent.total_seconds() >= 590, sent


async def test_twilio_429_retries_after_retry_after(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-429-sms", "sms", text="Rate limited")
    contact = h.contact(engine_db, phone="+15551230429")
    fake_providers.script(
        "twilio", twilio_error(20429, "Too Many Requests", 429, headers={"Retry-After": "300"})
    )

    result, view = await channels.run_send(channel_client, engine_db, contact, "sms", "ch-429-sms")

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [r.accepted for r in fake_providers.of("twilio")] == [False, True]
    [sent] = h.offsets(view, "sent")
    assert sent.total_seconds() >= 295, sent

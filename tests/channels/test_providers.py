"""Each provider against the fake server directly: how every kind of answer is classed."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from temporal_journeys.activities.providers.base import (
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Provider,
)
from temporal_journeys.activities.providers.sendgrid_email import SendGridEmail
from temporal_journeys.activities.providers.twilio_sms import TwilioSms
from temporal_journeys.activities.providers.webhook import SignedWebhook
from temporal_journeys.journeys.settings import Settings
from tests.support.channels import channel_settings
from tests.support.fake_providers import Answer, FakeProviders, sendgrid_error, twilio_error

NO_DB = "sqlite://"  # the providers never touch the database
PROVIDERS = {"sendgrid": SendGridEmail, "twilio": TwilioSms, "webhook": SignedWebhook}


def message(fake: FakeProviders) -> OutgoingMessage:
    return OutgoingMessage(
        message_id="msg_classes",
        channel="email",
        to="+15551230000",
        subject="Hi",
        html=None,
        text="Hi",
        contact_id="c-1",
        url=f"{fake.url}/hooks/classes",
    )


def provider(name: str, settings: Settings) -> Provider:
    return PROVIDERS[name](settings)


@pytest.mark.parametrize(
    ("name", "answer", "error"),
    [
        ("sendgrid", sendgrid_error(401, "Bad key"), PermanentSendError),
        ("sendgrid", sendgrid_error(403, "Access forbidden"), PermanentSendError),
        ("sendgrid", sendgrid_error(413, "Payload too large"), PermanentSendError),
        ("sendgrid", Answer(502), NotAccepted),
        ("sendgrid", Answer(504), NotAccepted),
        ("sendgrid", Answer(500), OutcomeUnknown),
        ("twilio", twilio_error(21610, "Unsubscribed recipient"), PermanentSendError),
        ("twilio", twilio_error(21614, "Not a mobile number"), PermanentSendError),
        ("twilio", twilio_error(21408, "Region not enabled"), PermanentSendError),
        ("twilio", twilio_error(20003, "Authenticate", 401), PermanentSendError),
        ("twilio", twilio_error(20503, "Service unavailable", 503), NotAccepted),
        ("webhook", Answer(400), PermanentSendError),
        ("webhook", Answer(503), NotAccepted),
        ("webhook", Answer(500), OutcomeUnknown),
    ],
)  # fmt: skip
async def test_answers_are_classed(
    fake_providers: FakeProviders,
    name: str,
    answer: Answer,
    error: type[Exception],
):
    fake_providers.script(name, answer)
    with pytest.raises(error):
        await provider(name, channel_settings(NO_DB, fake_providers)).send(message(fake_providers))
    assert len(fake_providers.of(name)) == 1


async def test_rate_limits_carry_the_providers_delay(fake_providers: FakeProviders):
    settings = channel_settings(NO_DB, fake_providers)
    reset = str(int(time.time()) + 90)
    fake_providers.script("sendgrid", Answer(429, headers={"X-RateLimit-Reset": reset}))
    fake_providers.script(
        "twilio", twilio_error(20429, "Too Many", 429, headers={"Retry-After": "42"})
    )
    fake_providers.script("webhook", Answer(429, headers={"Retry-After": "7"}))

    delays = {}
    for name in PROVIDERS:
        with pytest.raises(NotAccepted) as raised:
            await provider(name, settings).send(message(fake_providers))
        delays[name] = raised.value.retry_after

    assert timedelta(seconds=85) <= delays["sendgrid"] <= timedelta(seconds=90)
    assert delays["twilio"] == timedelta(seconds=42)
    assert delays["webhook"] == timedelta(seconds=7)


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_a_slow_answer_is_an_unknown_outcome(fake_providers: FakeProviders, name: str):
    fake_providers.script(name, Answer(200, {"sid": "SMx"}, delay=2))
    with pytest.raises(OutcomeUnknown):
        await provider(name, channel_settings(NO_DB, fake_providers)).send(message(fake_providers))
    assert [r.accepted for r in fake_providers.of(name)] == [True]


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_a_provider_nobody_answers_at_did_not_take_the_message(name: str):
    with FakeProviders() as stopped:
        url = stopped.url  # a port that was free a moment ago and is closed now
    settings = channel_settings(NO_DB, stopped)
    gone = OutgoingMessage(**{**message(stopped).__dict__, "url": f"{url}/hooks/gone"})
    with pytest.raises(NotAccepted):
        await provider(name, settings).send(gone)

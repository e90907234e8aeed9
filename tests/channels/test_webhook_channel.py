"""The webhook channel posts a signed JSON body to the template's URL."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.activities.providers.webhook import verify
from temporal_journeys.store.db import Database
from tests.support import channels
from tests.support import harness as h
from tests.support.channels import WEBHOOK_SECRET, channel_settings, channel_worker
from tests.support.fake_providers import Answer, FakeProviders

HOOK_URL = "{{ data.base }}/hooks/crm/{{ contact.id }}"


def hook_step(fake: FakeProviders, template: str) -> list[dict]:
    steps = channels.send_steps("webhook", template, data={"base": fake.url, "plan": "pro"})
    return steps


async def test_a_webhook_step_posts_a_body_whose_signature_verifies(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-hook", "webhook", url=HOOK_URL)
    contact = h.contact(engine_db, first_name="Lin")

    result, view = await channels.run_journey(
        channel_client, engine_db, contact, hook_step(fake_providers, "ch-hook"), cart="c-1"
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    [hook] = fake_providers.accepted("webhook")
    assert hook.path == f"/hooks/crm/{contact}"
    [message] = h.messages(engine_db, contact)
    assert hook.body["message_id"] == message.id
    assert hook.body["contact"]["first_name"] == "Lin"
    assert hook.body["event"]["name"] == "test.started"
    assert hook.body["event"]["properties"] == {"cart": "c-1"}
    assert hook.body["data"]["plan"] == "pro"
    assert hook.headers["Idempotency-Key"] == message.id
    # A receiver's check, written out: HMAC-SHA256 over "<t>.<raw body>".
    header = hook.headers["X-Journeys-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), parts["t"].encode() + b"." + hook.raw, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(int(parts["t"]) - time.time()) < 60
    assert verify(WEBHOOK_SECRET, header, hook.raw)
    assert not verify(WEBHOOK_SECRET, header, hook.raw + b" ")
    assert not verify("another-secret", header, hook.raw)


async def test_a_webhook_template_with_text_posts_that_text(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(
        engine_db,
        "ch-hook-text",
        "webhook",
        url=HOOK_URL,
        text='{"lead": "{{ contact.id }}", "plan": "{{ data.plan }}"}',
    )
    contact = h.contact(engine_db)

    await channels.run_journey(
        channel_client, engine_db, contact, hook_step(fake_providers, "ch-hook-text")
    )

    [hook] = fake_providers.accepted("webhook")
    assert json.loads(hook.raw) == {"lead": contact, "plan": "pro"}
    assert verify(WEBHOOK_SECRET, hook.headers["X-Journeys-Signature"], hook.raw)


async def test_a_webhook_answering_503_is_posted_again_with_the_same_idempotency_key(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-hook", "webhook", url=HOOK_URL)
    contact = h.contact(engine_db)
    fake_providers.script("webhook", Answer(503))

    _, view = await channels.run_journey(
        channel_client, engine_db, contact, hook_step(fake_providers, "ch-hook")
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    first, second = fake_providers.of("webhook")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert [first.accepted, second.accepted] == [False, True]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [(Answer(404), "webhook answered 404"), (Answer(410), "webhook answered 410")],
)
async def test_a_webhook_refused_for_good_follows_on_failure(
    channel_client: Client,
    engine_db: Database,
    fake_providers: FakeProviders,
    answer: Answer,
    reason: str,
):
    h.template(engine_db, "ch-hook", "webhook", url=HOOK_URL)
    contact = h.contact(engine_db)
    fake_providers.script("webhook", answer)

    _, view = await channels.run_journey(
        channel_client, engine_db, contact, hook_step(fake_providers, "ch-hook")
    )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert reason in channels.detail(view, "failed")


async def test_without_a_signing_secret_a_webhook_step_fails_with_the_reason(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers: FakeProviders,
):
    h.template(engine_db, "ch-hook", "webhook", url=HOOK_URL)
    contact = h.contact(engine_db)
    settings = channel_settings(postgres_url, fake_providers, webhook_signing_secret=None)

    async with channel_worker(time_env, engine_db, settings) as queue:
        _, view = await channels.run_journey(
            client, engine_db, contact, hook_step(fake_providers, "ch-hook"), queue=queue
        )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "needs a signing secret" in channels.detail(view, "failed")
    assert fake_providers.of("webhook") == []

"""The whole loop: a run emails through the real SendGrid SDK, the fake SendGrid posts a signed
open for what it received back to the API, and the run waiting for that open moves on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from temporalio.client import Client

from temporal_journeys.api.app import create_app
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Message
from tests.support import channels
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.channels import channel_settings
from tests.support.fake_providers import FakeProviders, Recorded

STEPS = [
    {"id": "hello", "send": {"channel": "email", "template": "loop-hello"}},
    {
        "id": "opened?",
        "wait_for": {"event": "email.opened", "message": "hello", "timeout": "P2D"},
        "on_timeout": "done",
        "next": "thanks",
    },
    {"id": "thanks", "update": {"add_tags": ["opened-hello"]}},
    {"id": "done", "exit": {}},
]


class Api:
    """The API over ASGI, configured with the key pair the fake SendGrid signs with."""

    def __init__(self, http: httpx.AsyncClient, app: object, signer: sw.SendGridSigner) -> None:
        self.http, self.app, self.signer = http, app, signer

    async def post_as_sendgrid(self, received: Recorded, event: str) -> httpx.Response:
        """What SendGrid's Event Webhook posts about a mail it received: the custom args of
        the send come back at the top level of each event."""
        message_id = received.body["custom_args"]["journeys_message_id"]
        [recipient] = received.body["personalizations"][0]["to"]
        body = sw.sendgrid_body([sw.sendgrid_event(event, message_id, email=recipient["email"])])
        return await self.http.post(
            "/v1/webhooks/sendgrid", content=body, headers=self.signer.headers(body)
        )


@pytest_asyncio.fixture
async def api(
    client: Client, engine_db: Database, postgres_url: str, fake_providers: FakeProviders
) -> AsyncIterator[Api]:
    signer = sw.SendGridSigner()
    settings = channel_settings(
        postgres_url, fake_providers, sendgrid_webhook_public_key=signer.public_key_b64
    )
    app = create_app(settings, temporal=client, db=engine_db, relay=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Api(http, app, signer)


async def test_an_open_posted_by_the_fake_sendgrid_releases_the_wait_for(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders, api: Api
):
    h.template(engine_db, "loop-hello", subject="Hello {{ contact.first_name }}", text="Hi")
    contact = h.contact(engine_db, first_name="Ada")
    handle = await channels.start_journey(channel_client, engine_db, contact, STEPS)
    await h.wait_until(lambda: len(fake_providers.accepted("sendgrid")) == 1, "the email")
    [received] = fake_providers.accepted("sendgrid")
    [message] = h.messages(engine_db, contact)
    assert received.body["subject"] == "Hello Ada"

    for event in ("processed", "delivered", "open"):
        response = await api.post_as_sendgrid(received, event)
        assert response.status_code == 200, response.text
    while await api.app.state.relay.deliver_once():  # type: ignore[attr-defined]
        pass
    result, view = await h.finish(handle)

    assert result.status == "completed"
    [released] = h.at(view, "event")
    assert released.step == "opened?" and released.detail.startswith("email.opened")
    assert h.at(view, "timeout") == []
    assert sw.reload(engine_db, Contact, contact).tags == ["opened-hello"]
    assert sw.reload(engine_db, Message, message.id).status == "opened"
    assert len(fake_providers.accepted("sendgrid")) == 1

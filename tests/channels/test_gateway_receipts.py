"""A gateway the webhook channel posts to (WeChat and the like) reports back: signed delivery
receipts, applied once, become events a journey waits for, as an email open is."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI
from temporalio.client import Client

from temporal_journeys.activities.providers.webhook import SIGNATURE_HEADER, signature
from temporal_journeys.api.app import create_app
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Message
from tests.support import channels
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.channels import WEBHOOK_SECRET, channel_settings
from tests.support.fake_providers import FakeProviders

STEPS = [
    {
        "id": "notify",
        "send": {
            "channel": "webhook",
            "template": "gateway-notify",
            "data": {"base": "{base}"},
        },
    },
    {
        "id": "read?",
        "wait_for": {"event": "webhook.read", "message": "notify", "timeout": "P2D"},
        "on_timeout": "done",
        "next": "thanks",
    },
    {"id": "thanks", "update": {"add_tags": ["answers-on-wechat"]}},
    {"id": "done", "exit": {}},
]


class Gateway:
    """The API as a gateway reaches it: receipts signed with the shared webhook secret."""

    def __init__(self, http: httpx.AsyncClient, app: FastAPI) -> None:
        self.http, self.app = http, app

    async def post(
        self, body: dict[str, Any] | bytes, *, secret: str = WEBHOOK_SECRET, age: int = 0
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        header = signature(secret, int(time.time()) - age, raw)
        return await self.http.post(
            "/v1/webhooks/gateway", content=raw, headers={SIGNATURE_HEADER: header}
        )

    async def relay(self) -> None:
        while await self.app.state.relay.deliver_once():
            pass


@pytest_asyncio.fixture
async def gateway(
    client: Client, engine_db: Database, postgres_url: str, fake_providers: FakeProviders
) -> AsyncIterator[Gateway]:
    app = create_app(
        channel_settings(postgres_url, fake_providers), temporal=client, db=engine_db, relay=False
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Gateway(http, app)


def _steps(fake: FakeProviders) -> list[dict[str, Any]]:
    steps = json.loads(json.dumps(STEPS))
    steps[0]["send"]["data"]["base"] = fake.url
    return steps


async def test_a_read_receipt_from_the_gateway_releases_the_wait_for(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders, gateway: Gateway
):
    h.template(engine_db, "gateway-notify", "webhook", url="{{ data.base }}/hooks/wechat/send")
    contact = h.contact(engine_db, first_name="Mei")
    handle = await channels.start_journey(
        channel_client, engine_db, contact, _steps(fake_providers)
    )
    await h.wait_until(lambda: len(fake_providers.accepted("webhook")) == 1, "the webhook")
    [posted] = fake_providers.accepted("webhook")
    message_id = posted.headers["Idempotency-Key"]

    delivered = await gateway.post({"message_id": message_id, "status": "delivered"})
    read = {"message_id": message_id, "status": "read", "receipt_id": "wx-1"}
    first, again = await gateway.post(read), await gateway.post(read)
    await gateway.relay()
    result, view = await h.finish(handle)

    assert delivered.json() == {"applied": 1, "duplicates": 0, "ignored": 0, "recorded": 1}
    assert first.json()["applied"] == 1 and again.json() == {
        "applied": 0,
        "duplicates": 1,
        "ignored": 0,
        "recorded": 0,
    }
    assert result.status == "completed"
    [released] = h.at(view, "event")
    assert released.step == "read?" and released.detail.startswith("webhook.read")
    assert sw.reload(engine_db, Contact, contact).tags == ["answers-on-wechat"]
    stored = sw.reload(engine_db, Message, message_id)
    assert stored.status == "opened"
    assert [s["status"] for s in stored.status_history][-2:] == ["delivered", "opened"]


async def test_a_failed_receipt_marks_the_message_and_tells_the_journey(
    engine_db: Database, gateway: Gateway
):
    contact = h.contact(engine_db)
    message_id = sw.sent_message(engine_db, contact, channel="webhook").id

    response = await gateway.post(
        {"message_id": message_id, "status": "failed", "error": "user blocked the account"}
    )

    assert response.status_code == 200 and response.json()["recorded"] == 1
    assert sw.reload(engine_db, Message, message_id).status == "undelivered"
    [event] = [e for e in sw.stored_events(engine_db, contact) if e.name == "webhook.failed"]
    assert event.properties["message_id"] == message_id
    assert event.properties["error"] == "user blocked the account"


async def test_receipts_that_cannot_be_shown_to_come_from_the_gateway_are_refused(
    engine_db: Database, gateway: Gateway
):
    body = {"message_id": "m-1", "status": "read"}
    unsigned = await gateway.http.post("/v1/webhooks/gateway", json=body)
    wrong = await gateway.post(body, secret="not-the-secret")
    stale = await gateway.post(body, age=3600)

    assert unsigned.status_code == 401 and SIGNATURE_HEADER in unsigned.json()["detail"]
    assert wrong.status_code == 401 and stale.status_code == 401


async def test_a_malformed_receipt_is_a_400_naming_the_field(gateway: Gateway):
    bad_status = await gateway.post({"message_id": "m-1", "status": "seen"})
    no_id = await gateway.post({"status": "read"})
    not_json = await gateway.post(b"{nope")

    assert bad_status.status_code == 400 and "$.status" in bad_status.json()["detail"]
    assert no_id.status_code == 400 and "$.message_id" in no_id.json()["detail"]
    assert not_json.status_code == 400


async def test_a_receipt_for_a_message_we_did_not_send_is_ignored_once(gateway: Gateway):
    body = {"message_id": "not-ours", "status": "delivered"}
    first, again = await gateway.post(body), await gateway.post(body)
    assert first.json()["ignored"] == 1 and again.json()["duplicates"] == 1

"""Test sends of push and WhatsApp templates through the API: to a registered device token
through the fake FCM, to a phone number through the real Twilio SDK as a content template."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from temporalio.client import Client

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from tests.support.api import Api
from tests.support.fake_fcm import FakeFcm
from tests.support.fake_providers import FakeProviders

TOKEN = "tTester000:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqxq"


@pytest_asyncio.fixture
async def push_api(
    client: Client, engine_db: Database, push_settings: Settings
) -> AsyncIterator[Api]:
    """The API with FCM and WhatsApp configured, so test sends go to the fakes."""
    app = create_app(push_settings, temporal=client, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        admin = keys.create(session, "push admin", "admin")
        track = keys.create(session, "push app", "track")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Api(
            app, http, {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {track}"}
        )


async def test_a_push_test_send_goes_to_the_registered_device(push_api: Api, fake_fcm: FakeFcm):
    api = push_api
    template = {"channel": "push", "subject": "Hi {{ contact.first_name }}", "text": "Test"}
    put = await api.http.put("/v1/templates/push-try", json=template, headers=api.admin)
    assert put.status_code == 200, put.text
    device = {"userId": "push-tester", "token": TOKEN, "platform": "ios"}
    assert (await api.http.post("/v1/devices", json=device, headers=api.track)).is_success

    response = await api.http.post(
        "/v1/templates/push-try/test-send",
        json={"to": TOKEN, "traits": {"first_name": "Sam"}},
        headers=api.admin,
    )
    unknown = await api.http.post(
        "/v1/templates/push-try/test-send", json={"to": "not-a-token"}, headers=api.admin
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "sent" and response.json()["test"] is True
    [sent] = fake_fcm.accepted()
    assert sent.token == TOKEN
    assert sent.message["notification"] == {"title": "Hi Sam", "body": "Test"}
    assert sent.message["apns"] == {"headers": {"apns-collapse-id": response.json()["id"]}}
    assert unknown.status_code == 422 and "$.to" in unknown.text


async def test_a_whatsapp_test_send_goes_as_its_content_template(
    push_api: Api, fake_twilio: FakeProviders
):
    api = push_api
    template = {"channel": "whatsapp", "provider_template_id": "HX" + "c" * 32}
    put = await api.http.put("/v1/templates/wa-try", json=template, headers=api.admin)
    assert put.status_code == 200, put.text

    response = await api.http.post(
        "/v1/templates/wa-try/test-send",
        json={
            "to": "+15005550006",
            "traits": {"first_name": "Sam"},
            "data": {"content_variables": {"1": "{{ contact.first_name }}"}},
        },
        headers=api.admin,
    )

    assert response.status_code == 200, response.text
    [sent] = fake_twilio.accepted("twilio")
    assert sent.body["To"] == "whatsapp:+15005550006"
    assert sent.body["ContentSid"] == "HX" + "c" * 32
    assert json.loads(sent.body["ContentVariables"]) == {"1": "Sam"}

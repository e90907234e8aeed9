"""WhatsApp through the real Twilio SDK against the fake Twilio: ``whatsapp:`` addresses,
free-form text inside the 24-hour window and content templates outside it, Twilio's errors,
status callbacks (``read`` releasing a ``wait_for``) and STOP from WhatsApp."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import events as events_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import channels
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.fake_providers import Answer, FakeProviders, twilio_error

SENDER = "+14155238886"
CONTENT_SID = "HX" + "b" * 32


def phone() -> str:
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


async def wrote_to_us(env: WorkflowEnvironment, db: Database, contact: str) -> None:
    """An inbound WhatsApp message from the contact, now on the workflows' clock (the
    time-skipping server's clock runs ahead of the wall clock): the window is open."""
    at = await env.get_current_time()
    with db.transaction() as session:
        row = {
            "message_id": uuid.uuid4().hex,
            "contact_id": contact,
            "name": "whatsapp.inbound",
            "properties": {"body": "hi"},
            "timestamp": at,
        }
        events_store.accept(session, [row], at)


class Webhooks:
    def __init__(self, http: httpx.AsyncClient, app: object, settings: Settings) -> None:
        self.http, self.app, self.settings = http, app, settings

    async def post(self, path: str, params: dict[str, str]) -> httpx.Response:
        body, headers = sw.twilio_request(
            path,
            params,
            token=self.settings.twilio_auth_token or "",
            public_url=self.settings.public_url,
        )
        return await self.http.post(path, content=body, headers=headers)

    async def relay(self) -> None:
        while await self.app.state.relay.deliver_once():  # type: ignore[attr-defined]
            pass


@pytest_asyncio.fixture
async def webhooks(
    client: Client, engine_db: Database, push_settings: Settings
) -> AsyncIterator[Webhooks]:
    app = create_app(push_settings, temporal=client, db=engine_db, relay=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Webhooks(http, app, push_settings)


async def test_inside_the_window_free_form_text_goes_to_whatsapp_addresses(
    client: Client,
    time_env: WorkflowEnvironment,
    push_queue: str,
    engine_db: Database,
    fake_twilio: FakeProviders,
    webhooks: Webhooks,
):
    h.template(engine_db, "wa-free", "whatsapp", text="Hi {{ contact.first_name }}")
    number = phone()
    contact = h.contact(engine_db, phone=number, first_name="Ada")
    await wrote_to_us(time_env, engine_db, contact)

    result, view = await channels.run_send(
        client, engine_db, contact, "whatsapp", "wa-free", push_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    [received] = fake_twilio.accepted("twilio")
    [message] = h.messages(engine_db, contact)
    assert received.body["To"] == f"whatsapp:{number}"
    assert received.body["From"] == f"whatsapp:{SENDER}"
    assert received.body["Body"] == "Hi Ada"
    assert "ContentSid" not in received.body
    callback = urlsplit(received.body["StatusCallback"])
    assert callback.path == "/v1/webhooks/twilio/whatsapp/status"
    assert parse_qs(callback.query) == {"message_id": [message.id]}
    assert received.headers["Authorization"].startswith("Basic ")  # the account's credentials
    assert message.provider == "twilio-whatsapp" and message.status == "sent"
    assert message.provider_message_id == received.answer.body["sid"]
    await webhooks.relay()  # the inbound event's outbox entry: no other test's relay finds it


async def test_outside_the_window_the_content_template_goes_with_its_variables(
    client: Client, push_queue: str, engine_db: Database, fake_twilio: FakeProviders
):
    h.template(
        engine_db,
        "wa-template",
        "whatsapp",
        text="Free-form text, only inside the window",
        provider_template_id=CONTENT_SID,
    )
    contact = h.contact(engine_db, phone=phone(), first_name="Ada")
    steps = channels.send_steps(
        "whatsapp",
        "wa-template",
        data={"content_variables": {"1": "{{ contact.first_name }}", "2": "{{ event.order }}"}},
    )

    result, view = await channels.run_journey(
        client, engine_db, contact, steps, push_queue, order="A-17"
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    [received] = fake_twilio.accepted("twilio")
    assert received.body["ContentSid"] == CONTENT_SID
    assert json.loads(received.body["ContentVariables"]) == {"1": "Ada", "2": "A-17"}
    assert "Body" not in received.body


async def test_outside_the_window_a_free_form_only_template_fails_without_a_call(
    client: Client, push_queue: str, engine_db: Database, fake_twilio: FakeProviders
):
    h.template(engine_db, "wa-closed", "whatsapp", text="Hello")
    contact = h.contact(engine_db, phone=phone())

    result, view = await channels.run_send(
        client, engine_db, contact, "whatsapp", "wa-closed", push_queue
    )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "24-hour window" in channels.detail(view, "failed")
    assert fake_twilio.of("twilio") == []


async def test_a_number_not_on_whatsapp_follows_on_failure(
    client: Client, push_queue: str, engine_db: Database, fake_twilio: FakeProviders
):
    h.template(engine_db, "wa-63003", "whatsapp", provider_template_id=CONTENT_SID)
    contact = h.contact(engine_db, phone=phone())
    fake_twilio.script("twilio", twilio_error(63003, "Channel could not find To address", 400))

    result, view = await channels.run_send(
        client, engine_db, contact, "whatsapp", "wa-63003", push_queue
    )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "twilio error 63003: the 'To' number is not on WhatsApp" in channels.detail(
        view, "failed"
    )
    assert len(fake_twilio.of("twilio")) == 1


async def test_a_rate_limit_retries_after_retry_after(
    client: Client, push_queue: str, engine_db: Database, fake_twilio: FakeProviders
):
    h.template(engine_db, "wa-429", "whatsapp", provider_template_id=CONTENT_SID)
    contact = h.contact(engine_db, phone=phone())
    fake_twilio.script(
        "twilio", twilio_error(20429, "Too Many Requests", 429, headers={"Retry-After": "300"})
    )

    result, view = await channels.run_send(
        client, engine_db, contact, "whatsapp", "wa-429", push_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [r.accepted for r in fake_twilio.of("twilio")] == [False, True]
    [sent] = h.offsets(view, "sent")
    assert sent.total_seconds() >= 290, sent


async def test_a_500_is_an_unknown_outcome_never_sent_again(
    client: Client, push_queue: str, engine_db: Database, fake_twilio: FakeProviders
):
    h.template(engine_db, "wa-500", "whatsapp", provider_template_id=CONTENT_SID)
    contact = h.contact(engine_db, phone=phone())
    fake_twilio.script("twilio", Answer(500, {"message": "oops"}, accept=True))

    result, view = await channels.run_send(
        client, engine_db, contact, "whatsapp", "wa-500", push_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert "outcome unknown" in channels.detail(view, "sent")
    assert len(fake_twilio.of("twilio")) == 1
    [message] = h.messages(engine_db, contact)
    assert message.status == "unknown"


STEPS = [
    {"id": "hello", "send": {"channel": "whatsapp", "template": "wa-read"}},
    {
        "id": "read?",
        "wait_for": {"event": "whatsapp.read", "message": "hello", "timeout": "P2D"},
        "on_timeout": "done",
        "next": "thanks",
    },
    {"id": "thanks", "update": {"add_tags": ["read-whatsapp"]}},
    {"id": "done", "exit": {}},
]


async def test_a_read_status_callback_releases_the_wait_for(
    client: Client,
    push_queue: str,
    engine_db: Database,
    fake_twilio: FakeProviders,
    webhooks: Webhooks,
):
    h.template(engine_db, "wa-read", "whatsapp", provider_template_id=CONTENT_SID)
    contact = h.contact(engine_db, phone=phone())
    handle = await channels.start_journey(client, engine_db, contact, STEPS, push_queue)
    await h.wait_until(lambda: len(fake_twilio.accepted("twilio")) == 1, "the WhatsApp message")
    [received] = fake_twilio.accepted("twilio")
    callback = urlsplit(received.body["StatusCallback"])
    sid = received.answer.body["sid"]

    for status in ("sent", "delivered", "read", "read"):
        response = await webhooks.post(
            f"{callback.path}?{callback.query}",
            {"MessageSid": sid, "MessageStatus": status, "To": received.body["To"]},
        )
        assert response.status_code == 204, response.text
    forged = await webhooks.http.post(
        f"{callback.path}?{callback.query}",
        content=b"MessageSid=x&MessageStatus=read",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
    )
    assert forged.status_code == 401
    await webhooks.relay()
    result, view = await h.finish(handle)

    [released] = h.at(view, "event")
    assert released.step == "read?" and released.detail.startswith("whatsapp.read")
    assert sw.reload(engine_db, Contact, contact).tags == ["read-whatsapp"]
    [message] = h.messages(engine_db, contact)
    assert message.status == "opened"
    assert [e.name for e in sw.stored_events(engine_db, contact)].count("whatsapp.read") == 1


async def test_stop_from_whatsapp_opts_out_of_whatsapp_only(
    client: Client,
    push_queue: str,
    engine_db: Database,
    fake_twilio: FakeProviders,
    webhooks: Webhooks,
):
    h.template(engine_db, "wa-stop", "whatsapp", provider_template_id=CONTENT_SID)
    number = phone()
    contact = h.contact(engine_db, phone=number)

    response = await webhooks.post(
        "/v1/webhooks/twilio/inbound",
        {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{number}", "Body": "stop"},
    )
    assert response.status_code == 200, response.text

    stored = sw.reload(engine_db, Contact, contact)
    assert stored.unsubscribed == ["whatsapp"]
    assert sw.suppression(engine_db, "whatsapp", number) == "stop"
    assert sw.suppression(engine_db, "sms", number) is None
    names = [e.name for e in sw.stored_events(engine_db, contact)]
    assert "whatsapp.inbound" in names and "whatsapp.unsubscribed" in names

    result, view = await channels.run_send(
        client, engine_db, contact, "whatsapp", "wa-stop", push_queue
    )
    assert channels.step_kinds(view) == [("send", "skipped")]
    assert channels.detail(view, "skipped") == "unsubscribed from whatsapp"
    assert fake_twilio.of("twilio") == []

    # START from WhatsApp opts back in.
    response = await webhooks.post(
        "/v1/webhooks/twilio/inbound",
        {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{number}", "Body": "START"},
    )
    assert response.status_code == 200
    assert sw.reload(engine_db, Contact, contact).unsubscribed == []
    assert sw.suppression(engine_db, "whatsapp", number) is None
    await webhooks.relay()

"""Twilio status callbacks and inbound SMS, verified against the configured public URL."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from starlette.datastructures import ImmutableMultiDict
from temporalio.client import Client

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, DeliveryReceipt, Message
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.api import Api

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@pytest.fixture(autouse=True)
def configured(api: Api) -> None:
    sw.configure(api.app, sw.SendGridSigner())


async def status(api: Api, message: Message, state: str, **extra: str):
    path = f"/v1/webhooks/twilio/status?message_id={message.id}"
    params = {
        "MessageSid": message.provider_message_id or "",
        "MessageStatus": state,
        "AccountSid": "AC123",
        **extra,
    }
    body, headers = sw.twilio_request(path, params)
    return await api.http.post(path, content=body, headers=headers)


async def inbound(api: Api, sender: str, text: str, sid: str | None = None):
    path = "/v1/webhooks/twilio/inbound"
    params = {
        "MessageSid": sid or h.unique("SM"),
        "From": sender,
        "To": "+15550009999",
        "Body": text,
        "AccountSid": "AC123",
    }
    body, headers = sw.twilio_request(path, params)
    return await api.http.post(path, content=body, headers=headers)


def sms_contact(db: Database) -> tuple[str, str]:
    phone = f"+1555{int(h.unique('x').split('-')[1], 16) % 10**7:07d}"
    return h.contact(db, phone=phone), phone


def receipts(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(DeliveryReceipt)) or 0


async def test_status_callbacks_advance_the_message_once(api: Api, engine_db: Database):
    contact_id, _ = sms_contact(engine_db)
    message = sw.sent_message(engine_db, contact_id, channel="sms")

    responses = [
        await status(api, message, "delivered"),
        await status(api, message, "delivered"),  # Twilio retries
        await status(api, message, "sent"),  # late, out of order
    ]

    assert [r.status_code for r in responses] == [204, 204, 204]
    stored = sw.reload(engine_db, Message, message.id)
    assert stored.status == "delivered"
    assert [s["status"] for s in stored.status_history] == ["pending", "sent", "delivered"]
    [event] = sw.stored_events(engine_db, contact_id)
    assert event.name == "sms.delivered"
    assert event.properties["message_id"] == message.id
    assert event.message_id == f"twilio:{message.provider_message_id}:delivered"


async def test_a_failed_sms_becomes_sms_failed_with_the_error_code(api: Api, engine_db: Database):
    contact_id, _ = sms_contact(engine_db)
    message = sw.sent_message(engine_db, contact_id, channel="sms")

    response = await status(api, message, "failed", ErrorCode="30003")

    assert response.status_code == 204
    assert sw.reload(engine_db, Message, message.id).status == "undelivered"
    [event] = sw.stored_events(engine_db, contact_id)
    assert (event.name, event.properties["error_code"]) == ("sms.failed", "30003")


async def test_the_signature_covers_the_public_url_not_the_one_the_request_reached(
    api: Api, engine_db: Database
):
    contact_id, _ = sms_contact(engine_db)
    message = sw.sent_message(engine_db, contact_id, channel="sms")
    path = f"/v1/webhooks/twilio/status?message_id={message.id}"
    params = {"MessageSid": message.provider_message_id, "MessageStatus": "delivered"}
    before = receipts(engine_db)

    # Signed for the address behind the proxy (where the test client posts): refused.
    body, headers = sw.twilio_request(path, params, public_url="http://api.test")
    internal = await api.http.post(path, content=body, headers=headers)
    # Signed with another account's token: refused.
    body, headers = sw.twilio_request(path, params, token="someone-elses-token")
    forged = await api.http.post(path, content=body, headers=headers)
    # Signed for another message than the one in the URL: refused.
    body, headers = sw.twilio_request(path.replace(message.id, "msg_other"), params)
    moved = await api.http.post(path, content=body, headers=headers)
    unsigned = await api.http.post(
        path, content=body, headers={"Content-Type": headers["Content-Type"]}
    )

    for response in (internal, forged, moved, unsigned):
        assert response.status_code == 401, response.text
    assert "X-Twilio-Signature" in unsigned.json()["detail"]
    assert sw.reload(engine_db, Message, message.id).status == "sent"
    assert receipts(engine_db) == before
    assert sw.stored_events(engine_db, contact_id) == []


async def test_unconfigured_twilio_webhooks_accept_nothing(api: Api, engine_db: Database):
    api.app.state.settings = api.app.state.settings.model_copy(update={"twilio_auth_token": None})
    contact_id, phone = sms_contact(engine_db)

    response = await inbound(api, phone, "STOP")

    assert response.status_code == 401
    assert "JOURNEYS_TWILIO_AUTH_TOKEN" in response.json()["detail"]
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/webhooks/twilio/status", {"MessageSid": "SM1"}),
        ("/v1/webhooks/twilio/status", {"MessageStatus": "delivered"}),
        ("/v1/webhooks/twilio/inbound", {"MessageSid": "SM1", "Body": "hi"}),
        ("/v1/webhooks/twilio/inbound", {"From": "+15550001111", "Body": "hi"}),
    ],
)
async def test_a_signed_request_missing_fields_is_400(
    api: Api, engine_db: Database, path: str, params: dict[str, str]
):
    before = receipts(engine_db)
    body, headers = sw.twilio_request(path, params)

    response = await api.http.post(path, content=body, headers=headers)

    assert response.status_code == 400
    assert "is required" in response.json()["detail"]
    assert receipts(engine_db) == before


async def test_a_body_that_is_not_a_form_is_400(api: Api):
    path = "/v1/webhooks/twilio/inbound"
    _, headers = sw.twilio_request(path, {})

    json_body = await api.http.post(
        path, json={"From": "+1555"}, headers={"X-Twilio-Signature": headers["X-Twilio-Signature"]}
    )
    not_utf8 = await api.http.post(path, content=b"Body=\xff\xfe", headers=headers)

    assert json_body.status_code == 400
    assert "application/x-www-form-urlencoded" in json_body.json()["detail"]
    assert not_utf8.status_code == 400


SMS = [
    {"id": "wait", "wait": "PT1H"},
    {"id": "text", "send": {"channel": "sms", "template": "hook-sms"}},
]


async def test_stop_opts_the_number_out_start_opts_it_back_in(
    api: Api, client: Client, engine_db: Database
):
    contact_id, phone = sms_contact(engine_db)

    stop = await inbound(api, phone, "  stop ")
    assert stop.status_code == 200
    assert stop.headers["content-type"].startswith("text/xml")
    assert stop.text == TWIML
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == ["sms"]
    assert sw.suppression(engine_db, "sms", phone) == "stop"

    handle, _ = await sw.start_journey(client, engine_db, SMS, contact_id=contact_id)
    result, view = await h.finish(handle)
    [skipped] = h.at(view, "skipped")
    assert (skipped.step, skipped.detail) == ("text", "unsubscribed from sms")
    assert result.status == "completed"

    start = await inbound(api, phone, "Start")
    assert start.status_code == 200
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == []
    assert sw.suppression(engine_db, "sms", phone) is None
    names = [(e.name, e.properties.get("keyword")) for e in sw.stored_events(engine_db, contact_id)]
    assert names == [
        ("sms.inbound", "stop"),
        ("sms.unsubscribed", None),
        ("sms.inbound", "start"),
    ]


async def test_every_inbound_sms_is_an_event_once(api: Api, engine_db: Database):
    contact_id, phone = sms_contact(engine_db)

    first = await inbound(api, phone, "stop sending me coupons", sid="SMrepeat1")
    again = await inbound(api, phone, "stop sending me coupons", sid="SMrepeat1")

    assert (first.status_code, again.status_code) == (200, 200)
    [event] = sw.stored_events(engine_db, contact_id)
    assert (event.name, event.properties["body"]) == ("sms.inbound", "stop sending me coupons")
    assert "keyword" not in event.properties  # only the whole body counts as a keyword
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == []


async def test_an_unknown_number_stores_nothing(api: Api, engine_db: Database):
    before = receipts(engine_db)

    response = await inbound(api, "+15559990000", "STOP")

    assert response.status_code == 200
    assert response.text == TWIML
    assert receipts(engine_db) == before
    assert sw.suppression(engine_db, "sms", "+15559990000") is None


async def test_a_form_with_a_repeated_field_is_verified_as_twilio_signs_it(
    api: Api, engine_db: Database
):
    contact_id, phone = sms_contact(engine_db)
    path = "/v1/webhooks/twilio/inbound"
    pairs = [("MessageSid", h.unique("SM")), ("From", phone), ("Body", "hi")]
    pairs += [("Tag", "b"), ("Tag", "a")]
    body = urlencode(pairs).encode()
    signature = sw.twilio_signature(sw.PUBLIC_URL + path, ImmutableMultiDict(pairs))
    wrong = sw.twilio_signature(sw.PUBLIC_URL + path, dict(pairs))  # drops one Tag

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = await api.http.post(path, content=body, headers={**form, sw.TWILIO_SIGNATURE: wrong})
    response = await api.http.post(
        path, content=body, headers={**form, sw.TWILIO_SIGNATURE: signature}
    )

    assert refused.status_code == 401
    assert response.status_code == 200
    assert [e.name for e in sw.stored_events(engine_db, contact_id)] == ["sms.inbound"]
